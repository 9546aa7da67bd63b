package loadtest

import (
	"encoding/json"
	"math"
	"sync"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	prevHi := uint64(0)
	for i := 0; i < histBuckets-1; i++ {
		lo, hi := bucketRange(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d (right after bucket %d)", i, lo, prevHi+1, i-1)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d,%d], but bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo >= histLinear && float64(hi-lo+1)/float64(lo) > 1.0/histSub+1e-9 {
			t.Fatalf("bucket %d = [%d,%d] is wider than 1/%d of its values", i, lo, hi, histSub)
		}
		prevHi = hi
	}
	if got := bucketOf(math.MaxUint64); got != histBuckets-1 {
		t.Fatalf("bucketOf(max) = %d, want the last bucket %d", got, histBuckets-1)
	}
}

func TestPercentileSmallValuesAreExact(t *testing.T) {
	var h Histogram
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{
		{0.01, 1 * time.Microsecond},
		{0.5, 50 * time.Microsecond},
		{0.99, 99 * time.Microsecond},
		{0.999, 100 * time.Microsecond},
		{1, 100 * time.Microsecond},
	} {
		if got := h.Percentile(c.q); got != c.want {
			t.Errorf("Percentile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got, want := h.Count(), uint64(100); got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	if got, want := h.Max(), 100*time.Microsecond; got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
	if got, want := h.Mean(), 50*time.Microsecond; got != want { // 5050/100 = 50.5, truncated
		t.Errorf("Mean = %v, want %v", got, want)
	}
}

func TestPercentileLargeValuesWithinBucketError(t *testing.T) {
	var h Histogram
	// 1 ms .. 1000 ms, one each: the nearest-rank p99 is 990 ms, p50 500 ms.
	for v := 1; v <= 1000; v++ {
		h.Record(time.Duration(v) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, 1000 * time.Millisecond}} {
		got := h.Percentile(c.q)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 1.0/histSub {
			t.Errorf("Percentile(%v) = %v, want %v within %.1f%%", c.q, got, c.want, 100.0/histSub)
		}
	}
	if got := h.Percentile(1); got > h.Max() {
		t.Errorf("Percentile(1) = %v is above the maximum %v", got, h.Max())
	}
}

func TestPercentileEmptyAndNegative(t *testing.T) {
	var h Histogram
	if got := h.Percentile(0.99); got != 0 {
		t.Errorf("empty Percentile = %v, want 0", got)
	}
	h.Record(-time.Second)
	if got := h.Percentile(0.5); got != 0 {
		t.Errorf("negative duration recorded as %v, want 0", got)
	}
}

func TestHistogramMergeOverTheWire(t *testing.T) {
	var a, b, want Histogram
	for v := 1; v <= 5000; v++ {
		d := time.Duration(v*v) * time.Microsecond
		want.Record(d)
		if v%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	raw, err := json.Marshal(b.Data())
	if err != nil {
		t.Fatal(err)
	}
	var d HistData
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if err := a.MergeData(d); err != nil {
		t.Fatal(err)
	}
	for _, q := range []float64{0.1, 0.5, 0.9, 0.99, 0.999, 1} {
		if got, w := a.Percentile(q), want.Percentile(q); got != w {
			t.Errorf("merged Percentile(%v) = %v, want %v", q, got, w)
		}
	}
	if a.Count() != want.Count() || a.Max() != want.Max() || a.Mean() != want.Mean() {
		t.Errorf("merged count/max/mean = %d/%v/%v, want %d/%v/%v", a.Count(), a.Max(), a.Mean(), want.Count(), want.Max(), want.Mean())
	}
	d.N++
	if err := a.MergeData(d); err == nil {
		t.Error("MergeData accepted counts that do not add up")
	}
}

func TestHistogramConcurrentRecord(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if got := h.Count(); got != 8000 {
		t.Fatalf("Count = %d, want 8000", got)
	}
	if got, want := h.Max(), 7999*time.Microsecond; got != want {
		t.Fatalf("Max = %v, want %v", got, want)
	}
}
