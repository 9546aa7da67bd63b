package metrics

import (
	"bytes"
	"os"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
)

// RegisterRuntime adds the process gauges an operator watches for leaks:
// goroutines, the Go heap and the resident memory. They carry the names the
// Prometheus Go client uses, so existing dashboards and alerts work. The
// values come from runtime/metrics, which, unlike runtime.ReadMemStats,
// does not stop the world at each scrape.
func RegisterRuntime(r *Registry) {
	rt := &runtimeReader{samples: []rtmetrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}}
	r.GaugeFunc("go_goroutines", "Goroutines that currently exist.", func() float64 { return rt.read(0) })
	r.GaugeFunc("go_memstats_heap_alloc_bytes", "Bytes of heap objects, live and not yet swept.", func() float64 { return rt.read(1) })
	r.GaugeFunc("go_gc_heap_live_bytes", "Heap bytes the last garbage collection found live.", func() float64 { return rt.read(2) })
	if _, err := residentBytes(); err == nil {
		r.GaugeFunc("process_resident_memory_bytes", "Resident memory size in bytes.", func() float64 {
			n, _ := residentBytes()
			return float64(n)
		})
	}
}

type runtimeReader struct {
	mu      sync.Mutex
	samples []rtmetrics.Sample
}

func (rt *runtimeReader) read(i int) float64 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rtmetrics.Read(rt.samples[i : i+1])
	switch v := rt.samples[i].Value; v.Kind() {
	case rtmetrics.KindUint64:
		return float64(v.Uint64())
	case rtmetrics.KindFloat64:
		return v.Float64()
	}
	return 0 // a metric this Go version does not have
}

// residentBytes reads the resident set size from /proc/self/statm (Linux);
// elsewhere it fails and the gauge is left out.
func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, strconv.ErrSyntax
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}
