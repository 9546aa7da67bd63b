package wstest

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// CheckGoroutines fails t if, after all of t's other cleanups ran, more
// goroutines are left than when it was called. Call it first in a test so
// its cleanup runs last.
func CheckGoroutines(t testing.TB) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		if err := WaitGoroutines(base, Wait); err != nil {
			t.Error(err)
		}
	})
}

// WaitGoroutines waits until at most base goroutines run, or reports the
// stacks of those left after d.
func WaitGoroutines(base int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			if len(buf) > 20000 {
				buf = append(buf[:20000], "\n..."...)
			}
			return fmt.Errorf("goroutine leak: %d running, %d at start\n%s", n, base, buf)
		}
		time.Sleep(10 * time.Millisecond) // polling the count; nothing to wait on
	}
}
