package loadtest

import (
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations with microsecond resolution in log-linear
// buckets: exact below 128 µs, then 64 buckets per power of two, so any
// reported percentile is within 1.6% of a recorded value. It is safe for
// concurrent use without locks (every bucket is an atomic counter), which
// matters when thousands of socket readers record at once; and it merges,
// so worker processes can send theirs to the parent.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sumUS  atomic.Uint64
	maxUS  atomic.Uint64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits // buckets per power of two
	histLinear  = 2 * histSub      // values below this have their own bucket
	histShifts  = 40               // covers up to ~2^46 µs (two years)
	histBuckets = histLinear + histShifts*histSub
)

// bucketOf maps a value in µs to its bucket.
func bucketOf(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	shift := bits.Len64(us) - (histSubBits + 1)
	if shift > histShifts {
		return histBuckets - 1
	}
	return histLinear + (shift-1)*histSub + int(us>>uint(shift)) - histSub
}

// bucketRange is the inclusive range of values in µs that land in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < histLinear {
		return uint64(i), uint64(i)
	}
	k := i - histLinear
	shift := uint(k/histSub + 1)
	m := uint64(k%histSub + histSub)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one duration; negative durations (clock steps) count as 0.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[bucketOf(us)].Add(1)
	h.n.Add(1)
	h.sumUS.Add(us)
	for {
		m := h.maxUS.Load()
		if us <= m || h.maxUS.CompareAndSwap(m, us) {
			break
		}
	}
}

// Count is how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max is the largest recorded duration (exact, to the microsecond).
func (h *Histogram) Max() time.Duration { return time.Duration(h.maxUS.Load()) * time.Microsecond }

// Mean is the average recorded duration.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sumUS.Load()/n) * time.Microsecond
}

// Percentile returns the nearest-rank q-quantile (0 < q <= 1): the
// smallest recorded value such that at least q of all values are <= it,
// reported as the middle of its bucket and never above the maximum. An
// empty histogram answers 0.
func (h *Histogram) Percentile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			if m := h.maxUS.Load(); v > m {
				v = m
			}
			return time.Duration(v) * time.Microsecond
		}
	}
	return h.Max()
}

// Reset forgets everything recorded. Records racing with Reset may be
// half-kept; callers reset between phases, when nothing is recording.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.n.Store(0)
	h.sumUS.Store(0)
	h.maxUS.Store(0)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sumUS.Add(o.sumUS.Load())
	for {
		m, om := h.maxUS.Load(), o.maxUS.Load()
		if om <= m || h.maxUS.CompareAndSwap(m, om) {
			break
		}
	}
}

// HistData is a Histogram on the wire between processes: only the
// non-empty buckets, as [bucket, count] pairs.
type HistData struct {
	N       uint64      `json:"n"`
	SumUS   uint64      `json:"sum_us"`
	MaxUS   uint64      `json:"max_us"`
	Buckets [][2]uint64 `json:"b,omitempty"`
}

// Data snapshots h for sending.
func (h *Histogram) Data() HistData {
	d := HistData{N: h.n.Load(), SumUS: h.sumUS.Load(), MaxUS: h.maxUS.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			d.Buckets = append(d.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return d
}

// MergeData adds a received snapshot to h.
func (h *Histogram) MergeData(d HistData) error {
	var total uint64
	for _, b := range d.Buckets {
		if b[0] >= histBuckets {
			return fmt.Errorf("histogram bucket %d out of range", b[0])
		}
		total += b[1]
	}
	if total != d.N {
		return fmt.Errorf("histogram counts add up to %d, want %d", total, d.N)
	}
	var o Histogram
	for _, b := range d.Buckets {
		o.counts[b[0]].Store(b[1])
	}
	o.n.Store(d.N)
	o.sumUS.Store(d.SumUS)
	o.maxUS.Store(d.MaxUS)
	h.Merge(&o)
	return nil
}
