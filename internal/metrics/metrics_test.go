package metrics

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"testing"
)

func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	var b bytes.Buffer
	n, err := r.WriteTo(&b)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(b.Len()) {
		t.Errorf("WriteTo returned %d bytes, wrote %d", n, b.Len())
	}
	return b.String()
}

func TestExpositionFormat(t *testing.T) {
	r := NewRegistry()
	// Registered out of order: the output must be sorted by name.
	h := r.Histogram("http_request_duration_seconds", "Latency of HTTP requests.", []float64{0.5, 0.1, 1}, "route", "code")
	c := r.Counter("events_total", "Events appended.\nPer tenant \\ all.", "type")
	g := r.Gauge("queue_depth", "Items waiting.")
	r.GaugeFunc("sockets_open", "Open WebSockets.", func() float64 { return 3 })
	r.CounterFunc("frames_sent_total", "Frames sent.", func() float64 { return 12 })
	r.Counter("unused_total", "Registered with labels, never used.", "x")

	c.With("message.created").Add(2)
	c.With(`a"b\c` + "\nd").Inc()
	g.Set(-1.5)
	h.With("/api/v1/agents", "2xx").Observe(0.1) // le is inclusive
	h.With("/api/v1/agents", "2xx").Observe(0.3)
	h.With("/api/v1/agents", "2xx").Observe(7)
	h.With("/api/v1/agents", "4xx").Observe(0.01)

	want := `# HELP events_total Events appended.\nPer tenant \\ all.
# TYPE events_total counter
events_total{type="a\"b\\c\nd"} 1
events_total{type="message.created"} 2
# HELP frames_sent_total Frames sent.
# TYPE frames_sent_total counter
frames_sent_total 12
# HELP http_request_duration_seconds Latency of HTTP requests.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{route="/api/v1/agents",code="2xx",le="0.1"} 1
http_request_duration_seconds_bucket{route="/api/v1/agents",code="2xx",le="0.5"} 2
http_request_duration_seconds_bucket{route="/api/v1/agents",code="2xx",le="1"} 2
http_request_duration_seconds_bucket{route="/api/v1/agents",code="2xx",le="+Inf"} 3
http_request_duration_seconds_sum{route="/api/v1/agents",code="2xx"} 7.4
http_request_duration_seconds_count{route="/api/v1/agents",code="2xx"} 3
http_request_duration_seconds_bucket{route="/api/v1/agents",code="4xx",le="0.1"} 1
http_request_duration_seconds_bucket{route="/api/v1/agents",code="4xx",le="0.5"} 1
http_request_duration_seconds_bucket{route="/api/v1/agents",code="4xx",le="1"} 1
http_request_duration_seconds_bucket{route="/api/v1/agents",code="4xx",le="+Inf"} 1
http_request_duration_seconds_sum{route="/api/v1/agents",code="4xx"} 0.01
http_request_duration_seconds_count{route="/api/v1/agents",code="4xx"} 1
# HELP queue_depth Items waiting.
# TYPE queue_depth gauge
queue_depth -1.5
# HELP sockets_open Open WebSockets.
# TYPE sockets_open gauge
sockets_open 3
`
	if got := scrape(t, r); got != want {
		t.Errorf("scrape:\ngot:\n%s\nwant:\n%s", got, want)
	}
	// A second scrape is identical: output order does not depend on maps.
	if a, b := scrape(t, r), scrape(t, r); a != b {
		t.Errorf("two scrapes differ:\n%s\n---\n%s", a, b)
	}
}

func TestUnlabelledStartAtZero(t *testing.T) {
	r := NewRegistry()
	r.Counter("restarts_total", "Restarts.")
	r.Histogram("commit_seconds", "Commit time.", []float64{1})
	want := `# HELP commit_seconds Commit time.
# TYPE commit_seconds histogram
commit_seconds_bucket{le="1"} 0
commit_seconds_bucket{le="+Inf"} 0
commit_seconds_sum 0
commit_seconds_count 0
# HELP restarts_total Restarts.
# TYPE restarts_total counter
restarts_total 0
`
	if got := scrape(t, r); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestSpecialValues(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"},
		{0, "0"}, {1e21, "1e+21"}, {0.25, "0.25"}, {42, "42"},
	} {
		if got := formatFloat(tc.v); got != tc.want {
			t.Errorf("formatFloat(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
	if got, want := escapeLabel("bad\xffbyte"), "bad\uFFFDbyte"; got != want {
		t.Errorf("invalid UTF-8 label: got %q, want %q", got, want)
	}
}

func TestRegisterSameNameReturnsSameFamily(t *testing.T) {
	r := NewRegistry()
	a := r.Counter("x_total", "X.", "k")
	b := r.Counter("x_total", "X.", "k")
	if a != b {
		t.Fatal("registering the same counter twice gave two families")
	}
	a.With("v").Inc()
	b.With("v").Inc()
	if got := a.With("v").Value(); got != 2 {
		t.Errorf("shared series = %v, want 2", got)
	}
}

func TestRegisterMisuse(t *testing.T) {
	for name, f := range map[string]func(r *Registry){
		"bad metric name":   func(r *Registry) { r.Counter("1abc", "h") },
		"bad label name":    func(r *Registry) { r.Counter("a_total", "h", "x-y") },
		"reserved label":    func(r *Registry) { r.Counter("a_total", "h", "__x") },
		"duplicate label":   func(r *Registry) { r.Counter("a_total", "h", "x", "x") },
		"le in histogram":   func(r *Registry) { r.Histogram("a", "h", LatencyBuckets(), "le") },
		"type clash":        func(r *Registry) { r.Counter("a", "h"); r.Gauge("a", "h") },
		"func type clash":   func(r *Registry) { r.GaugeFunc("a", "h", nil); r.CounterFunc("a", "h", nil) },
		"label clash":       func(r *Registry) { r.Counter("a", "h", "x"); r.Counter("a", "h", "y") },
		"wrong value count": func(r *Registry) { r.Counter("a", "h", "x").With("1", "2") },
		"negative counter":  func(r *Registry) { r.Counter("a", "h").Add(-1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f(NewRegistry())
		})
	}
}

// TestConcurrentUpdates runs under -race: recording and scraping at once
// must be safe and lose nothing.
func TestConcurrentUpdates(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("hits_total", "Hits.", "w")
	g := r.Gauge("level", "Level.")
	h := r.Histogram("lat", "Latency.", []float64{1, 2})
	const workers, each = 8, 1000
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				c.With("same").Inc()
				g.Add(1)
				h.Observe(1.5)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			var b bytes.Buffer
			r.WriteTo(&b)
		}
	}()
	wg.Wait()
	<-done
	if got := c.With("same").Value(); got != workers*each {
		t.Errorf("counter = %v, want %d", got, workers*each)
	}
	if got := g.With().Value(); got != workers*each {
		t.Errorf("gauge = %v, want %d", got, workers*each)
	}
	if got := h.With().Count(); got != workers*each {
		t.Errorf("histogram count = %v, want %d", got, workers*each)
	}
	out := scrape(t, r)
	if !strings.Contains(out, `lat_bucket{le="1"} 0`+"\n") || !strings.Contains(out, `lat_bucket{le="2"} 8000`+"\n") {
		t.Errorf("unexpected histogram buckets:\n%s", out)
	}
}

func BenchmarkCounterInc(b *testing.B) {
	c := NewRegistry().Counter("x_total", "X.", "route").With("/a")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := NewRegistry().Histogram("x", "X.", LatencyBuckets(), "route").With("/a")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Observe(0.042)
		}
	})
}
