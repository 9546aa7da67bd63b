package httpapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

func TestHealth(t *testing.T) {
	var readyErr atomic.Pointer[error]
	h := newHarness(t, withConfig(func(c *Config) {
		c.Ready = func() error {
			if p := readyErr.Load(); p != nil {
				return *p
			}
			return nil
		}
	}))
	for _, path := range []string{"/healthz", "/readyz"} {
		r := h.want(h.req("GET", path, "", nil), 200)
		if string(r.body) != `{"status":"ok"}` {
			t.Errorf("%s = %s", path, r.body)
		}
		h.want(h.req("HEAD", path, "", nil), 200)
	}

	notReady := errors.New("bolt: /data/onebox.db closed")
	readyErr.Store(&notReady)
	r := h.req("GET", "/readyz", "", nil)
	checkErr(t, r, 503, "unavailable")
	if strings.Contains(string(r.body), "onebox.db") {
		t.Errorf("readyz leaks its reason: %s", r.body)
	}
	if !strings.Contains(h.logs.String(), "onebox.db closed") {
		t.Error("readyz did not log its reason")
	}
	h.want(h.req("GET", "/healthz", "", nil), 200)

	readyErr.Store(nil)
	h.srv.draining.Store(true)
	checkErr(t, h.req("GET", "/readyz", "", nil), 503, "unavailable")
	h.srv.draining.Store(false)
}

// sampleRE matches one sample line of the text format.
var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? (\S+)$`)

// parseExposition checks text format 0.0.4 line by line: HELP and TYPE
// before a family's samples, valid names, quoted labels and numeric values,
// histograms cumulative with _count equal to the +Inf bucket.
func parseExposition(t *testing.T, text string) map[string]float64 {
	t.Helper()
	samples := map[string]float64{}
	types := map[string]string{}
	if !strings.HasSuffix(text, "\n") {
		t.Error("exposition does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
			continue
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 {
				t.Errorf("line %d: bad TYPE %q", i+1, line)
				continue
			}
			if _, dup := types[f[2]]; dup {
				t.Errorf("line %d: second TYPE for %s", i+1, f[2])
			}
			types[f[2]] = f[3]
			continue
		case strings.HasPrefix(line, "#"), line == "":
			t.Errorf("line %d: unexpected %q", i+1, line)
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %d: not a sample: %q", i+1, line)
			continue
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil && m[4] != "+Inf" && m[4] != "-Inf" && m[4] != "NaN" {
			t.Errorf("line %d: bad value %q", i+1, m[4])
		}
		name := m[1]
		fam := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suf); base != name && types[base] == "histogram" {
				fam = base
			}
		}
		if types[fam] == "" {
			t.Errorf("line %d: sample of %s before its TYPE", i+1, fam)
		}
		samples[m[1]+m[2]] = v
	}
	return samples
}

func TestMetricsEndpoint(t *testing.T) {
	var sockets atomic.Int64
	h := newHarness(t)
	h.metrics.GaugeFunc("onebox_ws_connections", "Open WebSockets.", func() float64 { return float64(sockets.Load()) })
	sockets.Store(2)
	tm := h.newTeam("Acme")
	h.want(h.req("GET", "/api/v1/agents", tm.agentToken, nil), 200)
	h.req("GET", "/api/v1/agents/x/keys", tm.agentToken, nil) // 403
	h.req("GET", "/api/v1/nope", "", nil)                     // unmatched

	r := h.want(h.req("GET", "/metrics", "", nil), 200)
	if ct := r.header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	samples := parseExposition(t, string(r.body))
	const lat = "onebox_http_request_duration_seconds"
	for key, min := range map[string]float64{
		lat + `_count{method="GET",route="/api/v1/agents",code="2xx"}`:            1,
		lat + `_bucket{method="GET",route="/api/v1/agents",code="2xx",le="+Inf"}`: 1,
		lat + `_count{method="GET",route="/api/v1/agents/:id/keys",code="4xx"}`:   1,
		lat + `_count{method="POST",route="/api/v1/session",code="2xx"}`:          2,
		lat + `_count{method="GET",route="unmatched",code="4xx"}`:                 1,
		lat + `_bucket{method="POST",route="/api/v1/agents",code="2xx",le="10"}`:  1,
		`onebox_ws_connections`: 2,
	} {
		if got, ok := samples[key]; !ok || got < min || math.IsNaN(got) {
			t.Errorf("%s = %v (present %v), want >= %v", key, got, ok, min)
		}
	}
	if strings.Contains(string(r.body), tm.agentID) {
		t.Error("metrics carry ids from paths")
	}
}

func TestWebSocketUnavailable(t *testing.T) {
	h := newHarness(t)
	checkErr(t, h.req("GET", "/api/v1/ws", "", nil, "Connection", "Upgrade", "Upgrade", "websocket"), 503, "unavailable")
}

// TestHijackedConnectionOutlivesTimeouts: plain connections are closed by
// the read and idle timeouts, but a connection handed to the WebSocket
// layer is not, however long it stays quiet. The plain connection's close
// is the clock: no sleeping.
func TestHijackedConnectionOutlivesTimeouts(t *testing.T) {
	type upgraded struct {
		path, upgrade string
	}
	got := make(chan upgraded, 1)
	h := newHarness(t, withConfig(func(c *Config) {
		c.readTimeout, c.idleTimeout = 200*time.Millisecond, 200*time.Millisecond
		c.WebSocket = func(nc net.Conn, r *http.Request) {
			defer nc.Close()
			got <- upgraded{r.URL.Path, r.Header.Get("Upgrade")}
			io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			buf := make([]byte, 5)
			if _, err := io.ReadFull(nc, buf); err != nil {
				return
			}
			nc.Write(buf)
		}
	}))
	addr := strings.TrimPrefix(h.url, "http://")

	ws, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(ws, "GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(ws)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if u := <-got; u.path != "/api/v1/ws" || u.upgrade != "websocket" {
		t.Errorf("serve got %+v", u)
	}

	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(plain, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	pr := bufio.NewReader(plain)
	presp, err := http.ReadResponse(pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, presp.Body)
	// The server closes the idle plain connection after idleTimeout.
	if _, err := pr.ReadByte(); err != io.EOF {
		t.Fatalf("idle plain connection: got %v, want EOF from the idle timeout", err)
	}

	// By now the upgrade request's read deadline is long past, yet the
	// socket still works.
	io.WriteString(ws, "hello")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("hijacked connection after the timeouts: %q, %v", buf, err)
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := newHarness(t, beforeServe(func(s *Server) {
		s.app.Get("/api/test/slow", func(c *fiber.Ctx) error {
			close(entered)
			<-release
			return c.SendString("done")
		})
	}))
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get(h.url + "/api/test/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		t.Fatalf("shutdown returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	if r := <-res; r.err != nil || r.status != 200 || r.body != "done" {
		t.Errorf("in-flight request: %+v", r)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://")); err == nil {
		t.Error("still accepting after shutdown")
	}
}
