package metrics

import (
	"regexp"
	"runtime"
	"strconv"
	"testing"
)

func TestRuntimeGauges(t *testing.T) {
	r := NewRegistry()
	RegisterRuntime(r)
	RegisterRuntime(r) // a second server in the same process must not panic
	runtime.GC()
	out := scrape(t, r)
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_heap_live_bytes", "process_resident_memory_bytes"} {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %s in\n%s", name, out)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil || v <= 0 {
			t.Errorf("%s = %q, want a positive number", name, m[1])
		}
	}
	// The goroutine gauge follows the process.
	before := runtime.NumGoroutine()
	stop := make(chan struct{})
	for range 50 {
		go func() { <-stop }()
	}
	defer close(stop)
	m := regexp.MustCompile(`(?m)^go_goroutines (\S+)$`).FindStringSubmatch(scrape(t, r))
	if v, _ := strconv.Atoi(m[1]); v < before+50 {
		t.Errorf("go_goroutines = %s after starting 50 more than %d", m[1], before)
	}
}
