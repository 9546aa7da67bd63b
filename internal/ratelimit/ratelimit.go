// Package ratelimit is a keyed token-bucket limiter: each key (a client
// address, a session, a channel) has a bucket of Burst tokens refilled at
// Rate per second, and each call takes one.
//
// Memory is bounded: a bucket that has refilled to full holds nothing worth
// keeping and is dropped by the next sweep, and when more than MaxKeys
// buckets are live the sweep also drops the ones idle longest, which at
// worst hands those keys a fresh burst.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// DefaultMaxKeys is MaxKeys when it is not set.
const DefaultMaxKeys = 100_000

// Limiter is safe for concurrent use. The zero value is not usable; make
// one with New.
type Limiter struct {
	rate    float64 // tokens per second
	burst   float64
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// Options configures a Limiter.
type Options struct {
	// Rate is how many calls per second a key may make in the long run.
	Rate float64
	// Burst is how many calls a key may make at once; at least 1.
	Burst int
	// MaxKeys bounds the buckets kept (default DefaultMaxKeys).
	MaxKeys int
	// Now is the clock; tests set it. Default time.Now.
	Now func() time.Time
}

// New makes a limiter. A Rate of zero or less makes one that allows
// everything.
func New(o Options) *Limiter {
	if o.Burst < 1 {
		o.Burst = 1
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Limiter{rate: o.Rate, burst: float64(o.Burst), maxKeys: o.MaxKeys, now: o.Now, buckets: map[string]*bucket{}}
}

// Allow takes a token from key's bucket. When there is none it returns
// false and how long until there is one.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys || now.Sub(l.lastSweep) > l.fullAfter() {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	} else {
		b.refill(now, l.rate, l.burst)
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
	return false, wait
}

// Len is how many keys hold a bucket now.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(burst, b.tokens+d.Seconds()*rate)
		b.at = now
	}
}

// fullAfter is how long an emptied bucket takes to refill.
func (l *Limiter) fullAfter() time.Duration {
	return time.Duration(l.burst / l.rate * float64(time.Second))
}

// sweep drops full buckets and, if still over maxKeys, those idle longest
// until a tenth of the room is free again. Called with mu held.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		b.refill(now, l.rate, l.burst)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.maxKeys {
		return
	}
	// Rare (a flood of distinct keys all spending tokens): find the idle
	// threshold that frees enough room by repeated halving.
	target := l.maxKeys - l.maxKeys/10 - 1
	idle := l.fullAfter()
	for len(l.buckets) > target && idle > 0 {
		idle /= 2
		for k, b := range l.buckets {
			if now.Sub(b.at) >= idle {
				delete(l.buckets, k)
			}
		}
	}
	for k := range l.buckets {
		if len(l.buckets) <= target {
			break
		}
		delete(l.buckets, k)
	}
}

// Return gives back a token Allow took, for calls that turned out not to
// count (a sign-in that succeeded), never above the burst.
func (l *Limiter) Return(key string) {
	if l == nil || l.rate <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		b.tokens = math.Min(l.burst, b.tokens+1)
	}
}
