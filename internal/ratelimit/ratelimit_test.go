package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestBurstThenRate(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{Rate: 10.0 / 60, Burst: 5, Now: c.now}) // 10 a minute
	for i := range 5 {
		if ok, _ := l.Allow("ip"); !ok {
			t.Fatalf("call %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("ip")
	if ok {
		t.Fatal("call past the burst allowed")
	}
	if wait <= 0 || wait > 6*time.Second {
		t.Fatalf("wait = %v, want (0, 6s]", wait)
	}
	if ok, _ := l.Allow("other"); !ok {
		t.Fatal("another key is limited by the first one's use")
	}
	c.add(wait)
	if ok, _ := l.Allow("ip"); !ok {
		t.Fatal("refused after waiting the time it said")
	}
	if ok, _ := l.Allow("ip"); ok {
		t.Fatal("a second call allowed with one token refilled")
	}
}

func TestZeroRateAllowsAll(t *testing.T) {
	l := New(Options{})
	for range 1000 {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatal("refused with no rate set")
		}
	}
}

func TestIdleKeysAreEvicted(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{Rate: 1, Burst: 2, MaxKeys: 100, Now: c.now})
	for i := range 50 {
		l.Allow(fmt.Sprint("a", i))
	}
	c.add(3 * time.Second) // every bucket is full again
	l.Allow("b")
	if got := l.Len(); got != 1 {
		t.Fatalf("after the refill time %d keys remain, want 1", got)
	}
}

func TestKeysAreBounded(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{Rate: 0.001, Burst: 1, MaxKeys: 100, Now: c.now})
	for i := range 10_000 {
		if i%7 == 0 {
			c.add(time.Millisecond)
		}
		l.Allow(fmt.Sprint("k", i))
		if n := l.Len(); n > 100 {
			t.Fatalf("%d keys held, max 100", n)
		}
	}
	// The newest key keeps its spent bucket.
	if ok, _ := l.Allow("k9999"); ok {
		t.Fatal("the most recent key lost its bucket")
	}
}

func TestConcurrentUse(t *testing.T) {
	l := New(Options{Rate: 1, Burst: 100})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if ok, _ := l.Allow("k"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed < 100 || allowed > 101 {
		t.Fatalf("%d of 400 allowed, want the burst of 100", allowed)
	}
}

func TestReturnGivesBackAToken(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Options{Rate: slowRate, Burst: 2, Now: c.now})
	for range 10 {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatal("refused though every token was returned")
		}
		l.Return("k")
	}
	l.Return("k") // never above the burst
	l.Allow("k")
	l.Allow("k")
	if ok, _ := l.Allow("k"); ok {
		t.Fatal("Return raised the bucket over its burst")
	}
}

const slowRate = 1.0 / 3600
