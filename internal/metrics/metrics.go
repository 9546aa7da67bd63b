// Package metrics is a small, dependency-free metrics registry that writes
// the Prometheus text exposition format (version 0.0.4).
//
// It exists so the server can be scraped without pulling the Prometheus
// client library (and its protobuf and procfs dependencies) into the binary.
// Recording is lock-free: series are looked up once (With) and then updated
// with atomics, so handlers on the hot path can keep a series and pay only an
// atomic add per observation.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// ContentType is the media type of WriteTo's output, for the HTTP response.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// LatencyBuckets suit latencies in seconds, from 5 ms to 10 s. It is a
// function, not a variable, so no caller can change everyone's buckets.
func LatencyBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// Registry holds metric families and writes them out. The zero value is not
// usable; call NewRegistry.
type Registry struct {
	mu       sync.Mutex
	families map[string]family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]family{}}
}

type family interface {
	desc() *desc
	// write appends the family's samples (no HELP/TYPE) to w.
	write(w *bufio.Writer)
	// empty reports whether the family has no series to show.
	empty() bool
}

// desc is what identifies a family: registering the same name again with the
// same desc returns the existing family, so independent components (or two
// servers in one test) can ask for the same metric without coordinating.
type desc struct {
	name    string
	help    string
	typ     string
	labels  []string
	buckets []float64
}

func (d *desc) same(o *desc) bool {
	return d.name == o.name && d.typ == o.typ && d.help == o.help &&
		slices.Equal(d.labels, o.labels) && slices.Equal(d.buckets, o.buckets)
}

// register returns the family already registered under d.name, or the one
// mk builds. A name reused with a different shape is a programming error and
// panics, like prometheus.MustRegister, because silently merging two
// different metrics would produce a scrape Prometheus rejects.
func (r *Registry) register(d *desc, mk func() family) family {
	if !validName(d.name, true) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", d.name))
	}
	seen := map[string]bool{}
	for _, l := range d.labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") {
			panic(fmt.Sprintf("metrics: invalid label name %q for %s", l, d.name))
		}
		if d.typ == "histogram" && l == "le" {
			panic(fmt.Sprintf("metrics: label le is reserved in histogram %s", d.name))
		}
		if seen[l] {
			panic(fmt.Sprintf("metrics: duplicate label %q for %s", l, d.name))
		}
		seen[l] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.families[d.name]; ok {
		if !f.desc().same(d) {
			panic(fmt.Sprintf("metrics: %s registered twice with different type, help, labels or buckets", d.name))
		}
		return f
	}
	f := mk()
	r.families[d.name] = f
	return f
}

// WriteTo writes every family in the Prometheus text format, families sorted
// by name and series by label values, so successive scrapes diff cleanly.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := make([]family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	sort.Slice(fams, func(i, j int) bool { return fams[i].desc().name < fams[j].desc().name })

	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, f := range fams {
		if f.empty() {
			continue
		}
		d := f.desc()
		bw.WriteString("# HELP ")
		bw.WriteString(d.name)
		bw.WriteByte(' ')
		bw.WriteString(escapeHelp(d.help))
		bw.WriteString("\n# TYPE ")
		bw.WriteString(d.name)
		bw.WriteByte(' ')
		bw.WriteString(d.typ)
		bw.WriteByte('\n')
		f.write(bw)
	}
	err := bw.Flush()
	return cw.n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// vec is the set of series of one family, keyed by their label values.
type vec[T any] struct {
	labels []string
	mu     sync.RWMutex
	series map[string]*entry[T]
	mk     func() *T
}

type entry[T any] struct {
	values []string
	v      *T
}

func newVec[T any](labels []string, mk func() *T) *vec[T] {
	return &vec[T]{labels: labels, series: map[string]*entry[T]{}, mk: mk}
}

// with finds or creates the series for values. The key joins the values
// with a byte that cannot appear in valid UTF-8, so distinct tuples never
// collide.
func (v *vec[T]) with(name string, values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s wants %d label values, got %d", name, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	e, ok := v.series[key]
	v.mu.RUnlock()
	if ok {
		return e.v
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.series[key]; ok {
		return e.v
	}
	e = &entry[T]{values: slices.Clone(values), v: v.mk()}
	v.series[key] = e
	return e.v
}

// sorted returns the series ordered by label values.
func (v *vec[T]) sorted() []*entry[T] {
	v.mu.RLock()
	out := make([]*entry[T], 0, len(v.series))
	for _, e := range v.series {
		out = append(out, e)
	}
	v.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return slices.Compare(out[i].values, out[j].values) < 0 })
	return out
}

func (v *vec[T]) empty() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.series) == 0
}

// atomicFloat is a float64 updated with compare-and-swap on its bits.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) add(d float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

func (f *atomicFloat) set(v float64) { f.bits.Store(math.Float64bits(v)) }
func (f *atomicFloat) load() float64 { return math.Float64frombits(f.bits.Load()) }

// Counter is a family of monotonically increasing values.
type Counter struct {
	d   desc
	vec *vec[CounterValue]
}

// CounterValue is one series of a Counter.
type CounterValue struct{ v atomicFloat }

// Inc adds one.
func (c *CounterValue) Inc() { c.v.add(1) }

// Add adds d, which must not be negative: a counter that goes down reads as
// a process restart to Prometheus' rate().
func (c *CounterValue) Add(d float64) {
	if d < 0 {
		panic("metrics: counter cannot decrease")
	}
	c.v.add(d)
}

// Value is the current count.
func (c *CounterValue) Value() float64 { return c.v.load() }

// Counter registers (or finds) a counter family with the given label names.
// A family without labels has its single series from the start, so it is
// scraped as 0 before anything happens.
func (r *Registry) Counter(name, help string, labels ...string) *Counter {
	d := desc{name: name, help: help, typ: "counter", labels: slices.Clone(labels)}
	f := r.register(&d, func() family {
		c := &Counter{d: d, vec: newVec(d.labels, func() *CounterValue { return &CounterValue{} })}
		if len(labels) == 0 {
			c.vec.with(name, nil)
		}
		return c
	})
	return f.(*Counter)
}

// With returns the series for the label values, in the order the labels
// were registered. Keep the result when the values are fixed: it saves the
// lookup on every update.
func (c *Counter) With(values ...string) *CounterValue { return c.vec.with(c.d.name, values) }

// Inc adds one to the series of a counter without labels.
func (c *Counter) Inc() { c.With().Inc() }

// Add adds d to the series of a counter without labels.
func (c *Counter) Add(d float64) { c.With().Add(d) }

func (c *Counter) desc() *desc { return &c.d }
func (c *Counter) empty() bool { return c.vec.empty() }
func (c *Counter) write(w *bufio.Writer) {
	for _, e := range c.vec.sorted() {
		writeSample(w, c.d.name, "", c.d.labels, e.values, "", "", e.v.Value())
	}
}

// Gauge is a family of values that go up and down.
type Gauge struct {
	d   desc
	vec *vec[GaugeValue]
}

// GaugeValue is one series of a Gauge.
type GaugeValue struct{ v atomicFloat }

// Set replaces the value.
func (g *GaugeValue) Set(v float64) { g.v.set(v) }

// Add adds d (negative to subtract).
func (g *GaugeValue) Add(d float64) { g.v.add(d) }

// Inc adds one.
func (g *GaugeValue) Inc() { g.v.add(1) }

// Dec subtracts one.
func (g *GaugeValue) Dec() { g.v.add(-1) }

// Value is the current value.
func (g *GaugeValue) Value() float64 { return g.v.load() }

// Gauge registers (or finds) a gauge family with the given label names.
func (r *Registry) Gauge(name, help string, labels ...string) *Gauge {
	d := desc{name: name, help: help, typ: "gauge", labels: slices.Clone(labels)}
	f := r.register(&d, func() family {
		g := &Gauge{d: d, vec: newVec(d.labels, func() *GaugeValue { return &GaugeValue{} })}
		if len(labels) == 0 {
			g.vec.with(name, nil)
		}
		return g
	})
	return f.(*Gauge)
}

// With returns the series for the label values.
func (g *Gauge) With(values ...string) *GaugeValue { return g.vec.with(g.d.name, values) }

// Set sets the series of a gauge without labels.
func (g *Gauge) Set(v float64) { g.With().Set(v) }

// Add adds to the series of a gauge without labels.
func (g *Gauge) Add(d float64) { g.With().Add(d) }

func (g *Gauge) desc() *desc { return &g.d }
func (g *Gauge) empty() bool { return g.vec.empty() }
func (g *Gauge) write(w *bufio.Writer) {
	for _, e := range g.vec.sorted() {
		writeSample(w, g.d.name, "", g.d.labels, e.values, "", "", e.v.Value())
	}
}

// valueFunc is a gauge or counter whose value is computed at scrape time,
// for numbers another component already keeps (open sockets, frames sent)
// so nothing has to be updated on their hot paths.
type valueFunc struct {
	d  desc
	fn func() float64
}

// GaugeFunc registers a gauge read by calling fn at every scrape. fn must be
// safe for concurrent use and quick. Registering the same name again keeps
// the first function.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	d := desc{name: name, help: help, typ: "gauge"}
	r.register(&d, func() family { return &valueFunc{d: d, fn: fn} })
}

// CounterFunc registers a counter read by calling fn at every scrape, for
// totals another component counts itself. fn must never go down (except
// across a restart), be safe for concurrent use and quick.
func (r *Registry) CounterFunc(name, help string, fn func() float64) {
	d := desc{name: name, help: help, typ: "counter"}
	r.register(&d, func() family { return &valueFunc{d: d, fn: fn} })
}

func (f *valueFunc) desc() *desc { return &f.d }
func (f *valueFunc) empty() bool { return false }
func (f *valueFunc) write(w *bufio.Writer) {
	writeSample(w, f.d.name, "", nil, nil, "", "", f.fn())
}

// Histogram is a family of distributions over fixed buckets.
type Histogram struct {
	d   desc
	vec *vec[HistogramValue]
}

// HistogramValue is one series of a Histogram. Each observation lands in
// exactly one (non-cumulative) slot; the cumulative counts Prometheus wants
// are summed at scrape time, which keeps Observe to two atomic operations.
type HistogramValue struct {
	upper []float64       // bucket upper bounds, ascending, without +Inf
	slots []atomic.Uint64 // len(upper)+1; the last is the +Inf overflow
	sum   atomicFloat
}

// Observe records one value.
func (h *HistogramValue) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v) // first bound >= v: le is inclusive
	h.slots[i].Add(1)
	h.sum.add(v)
}

// Count is the number of observations so far.
func (h *HistogramValue) Count() uint64 {
	var n uint64
	for i := range h.slots {
		n += h.slots[i].Load()
	}
	return n
}

// Histogram registers (or finds) a histogram family. buckets are upper
// bounds; they are sorted, and +Inf is implied.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *Histogram {
	b := slices.Clone(buckets)
	sort.Float64s(b)
	b = slices.Compact(b)
	if n := len(b); n > 0 && math.IsInf(b[n-1], +1) {
		b = b[:n-1]
	}
	for _, x := range b {
		if math.IsNaN(x) {
			panic(fmt.Sprintf("metrics: NaN bucket in %s", name))
		}
	}
	d := desc{name: name, help: help, typ: "histogram", labels: slices.Clone(labels), buckets: b}
	f := r.register(&d, func() family {
		h := &Histogram{d: d}
		h.vec = newVec(d.labels, func() *HistogramValue {
			return &HistogramValue{upper: d.buckets, slots: make([]atomic.Uint64, len(d.buckets)+1)}
		})
		if len(labels) == 0 {
			h.vec.with(name, nil)
		}
		return h
	})
	return f.(*Histogram)
}

// With returns the series for the label values.
func (h *Histogram) With(values ...string) *HistogramValue { return h.vec.with(h.d.name, values) }

// Observe records v in the series of a histogram without labels.
func (h *Histogram) Observe(v float64) { h.With().Observe(v) }

func (h *Histogram) desc() *desc { return &h.d }
func (h *Histogram) empty() bool { return h.vec.empty() }
func (h *Histogram) write(w *bufio.Writer) {
	for _, e := range h.vec.sorted() {
		var cum uint64
		for i := range e.v.slots {
			cum += e.v.slots[i].Load()
			le := "+Inf"
			if i < len(e.v.upper) {
				le = formatFloat(e.v.upper[i])
			}
			writeSample(w, h.d.name, "_bucket", h.d.labels, e.values, "le", le, float64(cum))
		}
		// _count is the +Inf bucket, read once above, so the two never
		// disagree even while observations race with the scrape.
		writeSample(w, h.d.name, "_sum", h.d.labels, e.values, "", "", e.v.sum.load())
		writeSample(w, h.d.name, "_count", h.d.labels, e.values, "", "", float64(cum))
	}
}

// writeSample writes one line: name{labels} value. extraName/extraValue add
// one more label after the family's (histograms' le).
func writeSample(w *bufio.Writer, name, suffix string, labels, values []string, extraName, extraValue string, v float64) {
	w.WriteString(name)
	w.WriteString(suffix)
	if len(labels) > 0 || extraName != "" {
		w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l)
			w.WriteString(`="`)
			w.WriteString(escapeLabel(values[i]))
			w.WriteByte('"')
		}
		if extraName != "" {
			if len(labels) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(extraName)
			w.WriteString(`="`)
			w.WriteString(extraValue)
			w.WriteByte('"')
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

// escapeLabel escapes a label value as the format requires: backslash,
// double quote and line feed.
func escapeLabel(s string) string { return escape(s, true) }

// escapeHelp escapes HELP text: backslash and line feed (quotes are fine).
func escapeHelp(s string) string { return escape(s, false) }

func escape(s string, quotes bool) string {
	if !utf8.ValidString(s) {
		// Prometheus rejects a whole scrape over one bad byte.
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if !strings.ContainsAny(s, "\\\n\"") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '"' && quotes:
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// validName checks metric names ([a-zA-Z_:][a-zA-Z0-9_:]*) and label names
// (the same without colons).
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(i > 0 && c >= '0' && c <= '9') || (colon && c == ':')
		if !ok {
			return false
		}
	}
	return true
}

// formatFloat writes values the way Prometheus' own clients do.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
