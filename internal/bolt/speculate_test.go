package bolt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/onebox/onebox/internal/inbox"
)

var counters = inbox.Collection{Tenant: "t1", Name: "counters"}

// bump is a re-runnable unit of work: read a counter, write it plus one,
// and log the new value.
func bump(key string, runs *atomic.Int32) func(inbox.Tx) error {
	return func(tx inbox.Tx) error {
		if runs != nil {
			runs.Add(1)
		}
		var n int
		if err := tx.Get(counters, key, &n); err != nil && !errors.Is(err, inbox.ErrNotFound) {
			return err
		}
		if err := tx.Put(counters, key, n+1); err != nil {
			return err
		}
		return tx.Append("t1", &inbox.Event{Type: "counter.bumped", Data: []byte(`{}`)})
	}
}

func counter(t *testing.T, s *Store, key string) int {
	t.Helper()
	var n int
	view(t, s, func(tx inbox.Tx) error { return tx.Get(counters, key, &n) })
	return n
}

func TestSpeculatedWritesAndEventsLand(t *testing.T) {
	rec := newRecorder()
	s := openTest(t, Options{Publisher: rec})
	var runs atomic.Int32
	for range 3 {
		if err := s.Speculate(context.Background(), bump("a", &runs)); err != nil {
			t.Fatalf("Speculate: %v", err)
		}
	}
	if got := counter(t, s, "a"); got != 3 {
		t.Fatalf("counter = %d, want 3", got)
	}
	if got := runs.Load(); got != 3 {
		t.Fatalf("fn ran %d times, want 3 (once each: nothing conflicted)", got)
	}
	if got := s.Speculated(); got != 3 {
		t.Fatalf("Speculated = %d, want 3", got)
	}
	rec.waitFor(t, 3)
	for i, e := range rec.snapshot() {
		if e.Seq != uint64(i+1) || e.TenantID != "t1" {
			t.Fatalf("event %d = seq %d tenant %q, want seq %d of t1", i, e.Seq, e.TenantID, i+1)
		}
	}
}

// A key read by a speculation and written before the speculation reaches
// the committer makes the committer run fn again on the current state.
func TestSpeculationRerunsWhenItsReadsChanged(t *testing.T) {
	s := openTest(t, Options{})
	update(t, s, bump("a", nil))
	// The held snapshot below would block a commit that has to grow the
	// file's map; make room first so the commits here never need to.
	update(t, s, func(tx inbox.Tx) error {
		filler := inbox.Collection{Name: "filler"}
		for i := range 512 {
			if err := tx.Put(filler, fmt.Sprint(i), strings.Repeat("x", 1024)); err != nil {
				return err
			}
		}
		return nil
	})

	read := make(chan struct{})
	proceed := make(chan struct{})
	var runs, speculative atomic.Int32
	fn := func(tx inbox.Tx) error {
		if _, ok := tx.(*specTx); ok && speculative.Add(1) == 1 {
			err := bump("a", &runs)(tx)
			close(read)
			<-proceed
			return err
		}
		return bump("a", &runs)(tx)
	}
	done := make(chan error, 1)
	go func() { done <- s.Speculate(context.Background(), fn) }()
	<-read
	// The speculation holds a snapshot where a = 1; move a on to 2.
	errc := make(chan error, 1)
	go func() { errc <- s.Update(context.Background(), bump("a", nil)) }()
	// The Update commits while the speculation is still waiting.
	if err := <-errc; err != nil {
		t.Fatalf("Update: %v", err)
	}
	close(proceed)
	if err := <-done; err != nil {
		t.Fatalf("Speculate: %v", err)
	}
	if got := counter(t, s, "a"); got != 3 {
		t.Fatalf("counter = %d, want 3 (the stale speculation would give 2)", got)
	}
	if got := runs.Load(); got != 2 {
		t.Fatalf("fn ran %d times, want 2 (speculation + rerun)", got)
	}
	if got := s.Speculated(); got != 0 {
		t.Fatalf("Speculated = %d, want 0", got)
	}
}

// Whatever the interleaving, concurrent read-modify-writes lose nothing.
func TestConcurrentSpeculationsLoseNoIncrement(t *testing.T) {
	rec := newRecorder()
	s := openTest(t, Options{Publisher: rec})
	const writers, each = 16, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := []string{"a", "b", "c"}[(w+i)%3]
				var err error
				if i%5 == 0 {
					err = s.Update(context.Background(), bump(key, nil))
				} else {
					err = s.Speculate(context.Background(), bump(key, nil))
				}
				if err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := counter(t, s, "a") + counter(t, s, "b") + counter(t, s, "c")
	if total != writers*each {
		t.Fatalf("counters sum to %d, want %d", total, writers*each)
	}
	rec.waitFor(t, writers*each)
	for i, e := range rec.snapshot() {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: the log has a gap or a duplicate", i, e.Seq)
		}
	}
	t.Logf("%d of %d speculative writes applied without a rerun", s.Speculated(), writers*each*4/5)
}

func TestSpeculatedErrorsAndFallbacks(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	update(t, s, bump("a", nil))

	// fn's own error comes back and nothing it wrote is kept.
	boom := errors.New("boom")
	err := s.Speculate(ctx, func(tx inbox.Tx) error {
		if err := tx.Put(counters, "b", 7); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Speculate = %v, want boom", err)
	}
	view(t, s, func(tx inbox.Tx) error {
		if err := tx.Get(counters, "b", nil); !errors.Is(err, inbox.ErrNotFound) {
			t.Errorf("b after a failed speculation: %v, want not found", err)
		}
		return nil
	})

	// Scan and Head need the writer: the unit runs there, correctly.
	var seen int
	var head uint64
	err = s.Speculate(ctx, func(tx inbox.Tx) error {
		seen = 0
		if err := tx.Scan(counters, "", "", false, func(string, []byte) (bool, error) {
			seen++
			return true, nil
		}); err != nil {
			return err
		}
		var err error
		head, err = tx.Head("t1")
		return err
	})
	if err != nil || seen != 1 || head != 1 {
		t.Fatalf("Speculate with Scan/Head = %v, saw %d records, head %d; want nil, 1, 1", err, seen, head)
	}

	// A panic is reported as an error, as Update does.
	if err := s.Speculate(ctx, func(inbox.Tx) error { panic("bad unit") }); err == nil {
		t.Fatal("a panicking unit of work returned no error")
	}

	// Bad keys are refused before they reach the committer.
	if err := s.Speculate(ctx, func(tx inbox.Tx) error { return tx.Put(counters, "", 1) }); err == nil {
		t.Fatal("an empty key was accepted")
	}
	if got := counter(t, s, "a"); got != 1 {
		t.Fatalf("counter a = %d, want 1", got)
	}
}

// Compact replaces the file and restarts transaction ids: a speculation
// taken before must not be checked against the new file's history.
func TestSpeculationAcrossCompactRuns(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	update(t, s, bump("a", nil))
	sp := s.speculate(bump("a", nil))
	if sp == nil {
		t.Fatal("speculation refused")
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	update(t, s, bump("a", nil)) // a = 2
	r := &request{fn: bump("a", nil), spec: sp, res: make(chan error, 1)}
	if err := s.enqueue(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := <-r.res; err != nil {
		t.Fatalf("commit: %v", err)
	}
	if got := counter(t, s, "a"); got != 3 {
		t.Fatalf("counter = %d, want 3 (the stale speculation would give 2)", got)
	}
}

func TestVersionsWindow(t *testing.T) {
	var v versions
	if !v.unchanged([]uint64{keyHash("k")}, 1) {
		t.Fatal("nothing written yet, but a read counts as changed")
	}
	v.rotate(10)
	v.wrote(keyHash("k"), 10)
	if v.unchanged([]uint64{keyHash("k")}, 9) || !v.unchanged([]uint64{keyHash("k")}, 10) || !v.unchanged([]uint64{keyHash("other")}, 9) {
		t.Fatal("a write at 10 is not seen correctly from snapshots 9 and 10")
	}
	v.rotate(10 + versionWindow) // k moves to prev
	if v.unchanged([]uint64{keyHash("k")}, 9) {
		t.Fatal("a write kept in the previous generation was missed")
	}
	v.rotate(10 + 2*versionWindow) // k is forgotten; snapshot 9 is too old to check
	if v.unchanged([]uint64{keyHash("other")}, 9) || v.unchanged([]uint64{keyHash("other")}, 10+versionWindow-2) {
		t.Fatal("a snapshot older than the window was trusted")
	}
	if !v.unchanged([]uint64{keyHash("k")}, 10+versionWindow) || !v.unchanged([]uint64{keyHash("k")}, 10+versionWindow-1) {
		t.Fatal("a snapshot inside the window was refused")
	}
}
