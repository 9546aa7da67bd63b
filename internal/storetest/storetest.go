// Package storetest is the acceptance suite every inbox.Store passes: one
// set of tests, run by each store package against its own backend, so the
// service behaves the same on bbolt and on PostgreSQL. Import it from
// _test files only.
package storetest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// OpenFunc opens a store for t whose committed events go to pub (which
// may be nil). Called again with the same t after the first store was
// closed, it must open the same data: the suite reopens to check
// durability. PerTest helps with that. The store must be closed when t
// ends (a second Close must be harmless).
type OpenFunc func(t *testing.T, pub inbox.Publisher) inbox.Store

// PerTest remembers one value per test, so an OpenFunc can find the data
// of the test's first open again. The zero value is ready to use.
type PerTest[V any] struct {
	mu sync.Mutex
	m  map[*testing.T]V
}

// Get returns the value made for t, making it on t's first call.
func (p *PerTest[V]) Get(t *testing.T, make func() V) V {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.m[t]; ok {
		return v
	}
	if p.m == nil {
		p.m = map[*testing.T]V{}
	}
	v := make()
	p.m[t] = v
	return v
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, open OpenFunc) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, OpenFunc)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"MissingReadsAsEmpty", testMissingReadsAsEmpty},
		{"ViewRefusesWrites", testViewRefusesWrites},
		{"ReservedNames", testReservedNames},
		{"ScanOrder", testScanOrder},
		{"ScanMatchesModel", testScanMatchesModel},
		{"ScanWhileWriting", testScanWhileWriting},
		{"ErrorRollsBackEverything", testErrorRollsBack},
		{"PanicRollsBack", testPanicRollsBack},
		{"CancelledContext", testCancelledContext},
		{"TxUnusableAfterFn", testTxUnusableAfterFn},
		{"AppendHeadEvents", testAppendHeadEvents},
		{"ConcurrentAppendsHaveNoGaps", testConcurrentAppends},
		{"ConcurrentIncrementsLoseNothing", testConcurrentIncrements},
		{"DurableAcrossReopen", testDurableAcrossReopen},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

type rec struct {
	V string `json:"v"`
}

func update(t *testing.T, s inbox.Store, fn func(inbox.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s inbox.Store, fn func(inbox.Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func get(t *testing.T, s inbox.Store, c inbox.Collection, key string) (rec, bool) {
	t.Helper()
	var r rec
	err := s.View(context.Background(), func(tx inbox.Tx) error { return tx.Get(c, key, &r) })
	if errors.Is(err, inbox.ErrNotFound) {
		return rec{}, false
	}
	if err != nil {
		t.Fatalf("Get %v %q: %v", c, key, err)
	}
	return r, true
}

func head(t *testing.T, s inbox.Store, tenant string) uint64 {
	t.Helper()
	_, h, err := s.Events(context.Background(), tenant, 0, 0)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	return h
}

// collector is a Publisher that keeps what it was handed.
type collector struct {
	mu     sync.Mutex
	events []inbox.Event
	more   chan struct{}
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1)} }

func (c *collector) Publish(events []inbox.Event) {
	c.mu.Lock()
	c.events = append(c.events, events...)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// waitFor waits until n events were published, failing after a deadline.
func (c *collector) waitFor(t *testing.T, n int) []inbox.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got := slices.Clone(c.events)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("published %d events, want %d", len(got), n)
		}
	}
}

func testGetPutDelete(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	global := inbox.Collection{Name: "things"}
	tenA := inbox.Collection{Tenant: "a", Name: "things"}
	tenB := inbox.Collection{Tenant: "b", Name: "things"}
	update(t, s, func(tx inbox.Tx) error {
		for c, v := range map[inbox.Collection]string{global: "g", tenA: "a", tenB: "b"} {
			if err := tx.Put(c, "k", rec{V: v}); err != nil {
				return err
			}
		}
		var got rec
		if err := tx.Get(tenA, "k", &got); err != nil || got.V != "a" {
			return fmt.Errorf("read own write: %v %+v", err, got)
		}
		if err := tx.Put(tenA, "k", rec{V: "a2"}); err != nil { // overwrite
			return err
		}
		if err := tx.Put(tenA, "raw", json.RawMessage(`{"v":"raw"}`)); err != nil {
			return err
		}
		return tx.Put(tenA, "gone", rec{V: "x"})
	})
	for c, want := range map[inbox.Collection]string{global: "g", tenA: "a2", tenB: "b"} {
		if got, ok := get(t, s, c, "k"); !ok || got.V != want {
			t.Errorf("Get %v = %+v, %v; want %q (scopes must not mix)", c, got, ok, want)
		}
	}
	if got, ok := get(t, s, tenA, "raw"); !ok || got.V != "raw" {
		t.Errorf("pre-encoded JSON = %+v, %v", got, ok)
	}
	view(t, s, func(tx inbox.Tx) error {
		if err := tx.Get(tenA, "gone", nil); err != nil {
			t.Errorf("existence check: %v", err)
		}
		return nil
	})
	update(t, s, func(tx inbox.Tx) error {
		if err := tx.Delete(tenA, "gone"); err != nil {
			return err
		}
		if err := tx.Delete(tenA, "never"); err != nil {
			return fmt.Errorf("deleting an absent key: %w", err)
		}
		return tx.Delete(inbox.Collection{Tenant: "zz", Name: "nothing"}, "k")
	})
	err := s.View(context.Background(), func(tx inbox.Tx) error { return tx.Get(tenA, "gone", &rec{}) })
	if !errors.Is(err, inbox.ErrNotFound) || inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Fatalf("Get deleted = %v, want ErrNotFound", err)
	}
}

func testMissingReadsAsEmpty(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	c := inbox.Collection{Tenant: "nobody", Name: "messages"}
	view(t, s, func(tx inbox.Tx) error {
		if err := tx.Get(c, "k", &rec{}); !errors.Is(err, inbox.ErrNotFound) {
			t.Errorf("Get = %v, want ErrNotFound", err)
		}
		if err := tx.Get(inbox.Collection{Name: "tenants"}, "k", &rec{}); !errors.Is(err, inbox.ErrNotFound) {
			t.Errorf("global Get = %v, want ErrNotFound", err)
		}
		if err := tx.Scan(c, "", "", false, func(string, []byte) (bool, error) {
			t.Error("Scan visited a record of an empty collection")
			return true, nil
		}); err != nil {
			t.Errorf("Scan: %v", err)
		}
		if h, err := tx.Head("nobody"); err != nil || h != 0 {
			t.Errorf("Head = %d, %v", h, err)
		}
		return nil
	})
	events, h, err := s.Events(context.Background(), "nobody", 0, 10)
	if err != nil || len(events) != 0 || h != 0 {
		t.Fatalf("Events = %v, %d, %v", events, h, err)
	}
	if o, err := s.Oldest(context.Background(), "nobody"); err != nil || o != 1 {
		t.Fatalf("Oldest = %d, %v, want 1", o, err)
	}
}

func testViewRefusesWrites(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	c := inbox.Collection{Tenant: "a", Name: "things"}
	update(t, s, func(tx inbox.Tx) error { return tx.Put(c, "k", rec{V: "1"}) })
	_ = s.View(context.Background(), func(tx inbox.Tx) error {
		if err := tx.Put(c, "k", rec{V: "2"}); err == nil {
			t.Error("Put in View succeeded")
		}
		if err := tx.Delete(c, "k"); err == nil {
			t.Error("Delete in View succeeded")
		}
		if err := tx.Append("a", &inbox.Event{Type: "x"}); err == nil {
			t.Error("Append in View succeeded")
		}
		return nil
	})
	if got, ok := get(t, s, c, "k"); !ok || got.V != "1" {
		t.Fatalf("after writes in a View: %+v, %v", got, ok)
	}
	if h := head(t, s, "a"); h != 0 {
		t.Fatalf("head after Append in a View = %d", h)
	}
}

func testReservedNames(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	for _, c := range []inbox.Collection{{Tenant: "a", Name: "events"}, {Tenant: "a", Name: "meta"}, {Tenant: "a", Name: ""}, {Name: ""}} {
		if err := s.Update(context.Background(), func(tx inbox.Tx) error { return tx.Put(c, "k", 1) }); err == nil {
			t.Errorf("Put into %+v succeeded", c)
		}
	}
	// Global collections may use those names: globals have no event log.
	update(t, s, func(tx inbox.Tx) error { return tx.Put(inbox.Collection{Name: "events"}, "k", 1) })
}

func scanKeys(t *testing.T, tx inbox.Tx, c inbox.Collection, prefix, after string, reverse bool, limit int) ([]string, error) {
	var got []string
	err := tx.Scan(c, prefix, after, reverse, func(k string, raw []byte) (bool, error) {
		var r rec
		if err := json.Unmarshal(raw, &r); err != nil || r.V != hex.EncodeToString([]byte(k)) {
			return false, fmt.Errorf("raw of %q = %s (%v)", k, raw, err)
		}
		got = append(got, k)
		return limit == 0 || len(got) < limit, nil
	})
	return got, err
}

func testScanOrder(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	c := inbox.Collection{Tenant: "a", Name: "messages"}
	// Bytewise order: "a/..." < "a0" ("/" is 0x2f), high bytes last, and
	// keys that are not UTF-8 at all.
	keys := []string{"A", "a", "a/1", "a/2", "a/3", "a0", "b/1", "b/2", "\xc3\xa9", "\xff", "\xff\xff"}
	update(t, s, func(tx inbox.Tx) error {
		for _, k := range slices.Backward(keys) {
			if err := tx.Put(c, k, rec{V: hex.EncodeToString([]byte(k))}); err != nil {
				return err
			}
		}
		// Same keys elsewhere must not show up.
		return tx.Put(inbox.Collection{Tenant: "b", Name: "messages"}, "a/9", rec{})
	})
	for _, tc := range []struct {
		prefix, after string
		reverse       bool
		limit         int
		want          []string
	}{
		{"a/", "", false, 0, []string{"a/1", "a/2", "a/3"}},
		{"a/", "a/1", false, 0, []string{"a/2", "a/3"}},
		{"a/", "a/15", false, 0, []string{"a/2", "a/3"}}, // after need not exist
		{"a/", "a/3", false, 0, nil},
		{"a/", "", true, 0, []string{"a/3", "a/2", "a/1"}},
		{"a/", "a/3", true, 0, []string{"a/2", "a/1"}},
		{"a/", "a/25", true, 0, []string{"a/2", "a/1"}},
		{"a/", "a/1", true, 0, nil},
		{"a/", "z", true, 0, []string{"a/3", "a/2", "a/1"}},  // after past the range
		{"a/", "0", false, 0, []string{"a/1", "a/2", "a/3"}}, // after before the range
		{"a/", "a/", false, 0, []string{"a/1", "a/2", "a/3"}},
		{"a", "", false, 0, []string{"a", "a/1", "a/2", "a/3", "a0"}},
		{"", "", false, 0, keys},
		{"", "", true, 3, []string{"\xff\xff", "\xff", "\xc3\xa9"}},
		{"", "b/1", true, 2, []string{"a0", "a/3"}},
		{"", "b/2", false, 0, []string{"\xc3\xa9", "\xff", "\xff\xff"}},
		{"\xff", "", true, 0, []string{"\xff\xff", "\xff"}},
		{"\xff", "\xff", false, 0, []string{"\xff\xff"}},
		{"b/", "", false, 1, []string{"b/1"}},
		{"c", "", false, 0, nil},
	} {
		var got []string
		view(t, s, func(tx inbox.Tx) error {
			var err error
			got, err = scanKeys(t, tx, c, tc.prefix, tc.after, tc.reverse, tc.limit)
			return err
		})
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Scan(%q, after %q, reverse %v, limit %d) = %q, want %q", tc.prefix, tc.after, tc.reverse, tc.limit, got, tc.want)
		}
	}
	stop := errors.New("stop")
	err := s.View(context.Background(), func(tx inbox.Tx) error {
		return tx.Scan(c, "", "", false, func(string, []byte) (bool, error) { return true, stop })
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Scan callback error = %v, want it passed through", err)
	}
}

// testScanMatchesModel compares Scan with a sorted model over enough keys
// to span a store's pages and batches, inside a write transaction after
// deleting runs of keys, and after commit.
func testScanMatchesModel(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	c := inbox.Collection{Tenant: "a", Name: "messages"}
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]bool{}
	for i := range 1500 {
		model[fmt.Sprintf("%c/%05d", 'a'+i%3, i)] = true
	}
	check := func(tx inbox.Tx, round int) error {
		keys := make([]string, 0, len(model))
		for k := range model {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for range 25 {
			prefix := []string{"", "a/", "b/", "c/", "b/01", "d"}[rng.IntN(6)]
			after := ""
			if rng.IntN(2) == 0 {
				after = fmt.Sprintf("%c/%05d", 'a'+rng.IntN(3), rng.IntN(1500))
			}
			reverse := rng.IntN(2) == 0
			var want []string
			for _, k := range keys {
				if strings.HasPrefix(k, prefix) && (after == "" || (!reverse && k > after) || (reverse && k < after)) {
					want = append(want, k)
				}
			}
			if reverse {
				slices.Reverse(want)
			}
			var got []string
			if err := tx.Scan(c, prefix, after, reverse, func(k string, _ []byte) (bool, error) {
				got = append(got, k)
				return true, nil
			}); err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("round %d: Scan(%q, after %q, reverse %v): got %d keys, want %d", round, prefix, after, reverse, len(got), len(want))
			}
		}
		return nil
	}
	update(t, s, func(tx inbox.Tx) error {
		for k := range model {
			if err := tx.Put(c, k, rec{V: strings.Repeat("x", 100)}); err != nil {
				return err
			}
		}
		return nil
	})
	for round := range 3 {
		from := rng.IntN(1500)
		var gone []string
		for i := from; i < from+300 && i < 1500; i++ {
			gone = append(gone, fmt.Sprintf("%c/%05d", 'a'+i%3, i))
		}
		for _, k := range gone {
			delete(model, k)
		}
		update(t, s, func(tx inbox.Tx) error {
			for _, k := range gone {
				if err := tx.Delete(c, k); err != nil {
					return err
				}
			}
			return check(tx, round)
		})
		view(t, s, func(tx inbox.Tx) error { return check(tx, round) })
	}
}

// Writing from a Scan callback must neither skip nor repeat records.
func testScanWhileWriting(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	c := inbox.Collection{Tenant: "a", Name: "snoozes"}
	const n = 300
	update(t, s, func(tx inbox.Tx) error {
		for i := range n {
			if err := tx.Put(c, fmt.Sprintf("k%04d", i), rec{V: strings.Repeat("x", 100)}); err != nil {
				return err
			}
		}
		return nil
	})
	for _, reverse := range []bool{false, true} {
		var seen []string
		update(t, s, func(tx inbox.Tx) error {
			seen = seen[:0] // the fn may run more than once
			return tx.Scan(c, "k", "", reverse, func(k string, _ []byte) (bool, error) {
				seen = append(seen, k)
				if err := tx.Delete(c, k); err != nil {
					return false, err
				}
				return true, tx.Put(c, "z"+k, rec{V: k})
			})
		})
		if len(seen) != n {
			t.Fatalf("reverse=%v: visited %d records, want %d", reverse, len(seen), n)
		}
		for i := 1; i < len(seen); i++ {
			if (seen[i] <= seen[i-1]) != reverse {
				t.Fatalf("reverse=%v: out of order at %d: %q then %q", reverse, i, seen[i-1], seen[i])
			}
		}
		// A callback deleting ahead of the cursor: those are not visited.
		var visited int
		update(t, s, func(tx inbox.Tx) error {
			visited = 0
			return tx.Scan(c, "z", "", false, func(k string, _ []byte) (bool, error) {
				visited++
				if err := tx.Delete(c, k); err != nil {
					return false, err
				}
				next := fmt.Sprintf("zk%04d", mustAtoi(k[2:])+1)
				if err := tx.Delete(c, next); err != nil {
					return false, err
				}
				return true, tx.Put(c, k[1:], rec{})
			})
		})
		if visited != n/2 {
			t.Fatalf("reverse=%v: a scan deleting the next key visited %d, want %d", reverse, visited, n/2)
		}
		// Put the rest back for the next round.
		update(t, s, func(tx inbox.Tx) error {
			for i := range n {
				if err := tx.Put(c, fmt.Sprintf("k%04d", i), rec{}); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

func mustAtoi(s string) int {
	var n int
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

func testErrorRollsBack(t *testing.T, open OpenFunc) {
	pub := newCollector()
	s := open(t, pub)
	c := inbox.Collection{Tenant: "a", Name: "things"}
	g := inbox.Collection{Name: "things"}
	update(t, s, func(tx inbox.Tx) error {
		if err := tx.Put(c, "keep", rec{V: "1"}); err != nil {
			return err
		}
		if err := tx.Put(c, "del", rec{V: "1"}); err != nil {
			return err
		}
		return tx.Append("a", &inbox.Event{Type: "first"})
	})
	boom := errors.New("boom")
	err := s.Update(context.Background(), func(tx inbox.Tx) error {
		for _, step := range []func() error{
			func() error { return tx.Put(c, "keep", rec{V: "2"}) },
			func() error { return tx.Put(c, "new", rec{V: "2"}) },
			func() error { return tx.Delete(c, "del") },
			func() error { return tx.Put(g, "new", rec{V: "2"}) },
			func() error { return tx.Append("a", &inbox.Event{Type: "lost"}) },
			func() error { return tx.Append("b", &inbox.Event{Type: "lost"}) },
		} {
			if err := step(); err != nil {
				return err
			}
		}
		if h, err := tx.Head("a"); err != nil || h != 2 {
			return fmt.Errorf("head inside = %d, %v", h, err)
		}
		return fmt.Errorf("wrapped: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	if got, _ := get(t, s, c, "keep"); got.V != "1" {
		t.Errorf("overwrite survived: %+v", got)
	}
	if _, ok := get(t, s, c, "new"); ok {
		t.Error("put survived")
	}
	if _, ok := get(t, s, g, "new"); ok {
		t.Error("global put survived")
	}
	if _, ok := get(t, s, c, "del"); !ok {
		t.Error("delete survived")
	}
	if h := head(t, s, "a"); h != 1 {
		t.Errorf("head a = %d, want 1", h)
	}
	if h := head(t, s, "b"); h != 0 {
		t.Errorf("head b = %d, want 0", h)
	}
	// The seq the failed update took is handed out again: no gap.
	update(t, s, func(tx inbox.Tx) error { return tx.Append("a", &inbox.Event{Type: "second"}) })
	events, h, err := s.Events(context.Background(), "a", 0, 10)
	if err != nil || h != 2 || len(events) != 2 || events[1].Seq != 2 || events[1].Type != "second" {
		t.Fatalf("Events = %+v, %d, %v", events, h, err)
	}
	published := pub.waitFor(t, 2)
	for _, e := range published {
		if e.Type == "lost" {
			t.Fatalf("a rolled back event was published: %+v", e)
		}
	}
	if len(published) != 2 || published[0].Seq != 1 || published[1].Seq != 2 {
		t.Fatalf("published %+v", published)
	}
}

func testPanicRollsBack(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	c := inbox.Collection{Tenant: "a", Name: "things"}
	err := s.Update(context.Background(), func(tx inbox.Tx) error {
		if err := tx.Put(c, "k", rec{V: "1"}); err != nil {
			return err
		}
		if err := tx.Append("a", &inbox.Event{Type: "x"}); err != nil {
			return err
		}
		panic("bad fn")
	})
	if err == nil {
		t.Fatal("a panicking fn succeeded")
	}
	if _, ok := get(t, s, c, "k"); ok {
		t.Error("write of a panicking fn survived")
	}
	if h := head(t, s, "a"); h != 0 {
		t.Errorf("head = %d", h)
	}
	// The store still works.
	update(t, s, func(tx inbox.Tx) error { return tx.Put(c, "k", rec{V: "2"}) })
}

func testCancelledContext(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	c := inbox.Collection{Tenant: "a", Name: "things"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := s.Update(ctx, func(tx inbox.Tx) error { ran = true; return tx.Put(c, "k", rec{}) }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with an ended ctx = %v", err)
	}
	if ran {
		t.Error("fn ran with an ended ctx")
	}
	if err := s.View(ctx, func(tx inbox.Tx) error { return nil }); err == nil {
		t.Error("View with an ended ctx succeeded")
	}
	if _, ok := get(t, s, c, "k"); ok {
		t.Error("write survived")
	}
}

func testTxUnusableAfterFn(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	var leaked inbox.Tx
	update(t, s, func(tx inbox.Tx) error { leaked = tx; return nil })
	if err := leaked.Put(inbox.Collection{Name: "x"}, "k", 1); err == nil {
		t.Fatal("Put on a finished tx succeeded")
	}
	if _, err := leaked.Head("a"); err == nil {
		t.Fatal("Head on a finished tx succeeded")
	}
}

func testAppendHeadEvents(t *testing.T, open OpenFunc) {
	pub := newCollector()
	s := open(t, pub)
	ctx := context.Background()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	update(t, s, func(tx inbox.Tx) error {
		for i := 1; i <= 10; i++ {
			e := &inbox.Event{Type: inbox.EventMessageCreated, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
			if i == 1 {
				e.At = at
			}
			if err := tx.Append("a", e); err != nil {
				return err
			}
			if e.Seq != uint64(i) || e.TenantID != "a" {
				return fmt.Errorf("appended event = seq %d tenant %q", e.Seq, e.TenantID)
			}
			if h, err := tx.Head("a"); err != nil || h != uint64(i) {
				return fmt.Errorf("Head after append %d = %d, %v", i, h, err)
			}
		}
		return tx.Append("b", &inbox.Event{Type: "other"})
	})
	view(t, s, func(tx inbox.Tx) error {
		if h, err := tx.Head("a"); err != nil || h != 10 {
			t.Errorf("Head in View = %d, %v", h, err)
		}
		return nil
	})
	events, h, err := s.Events(ctx, "a", 3, 4)
	if err != nil || h != 10 || len(events) != 4 {
		t.Fatalf("Events = %d events, head %d, %v", len(events), h, err)
	}
	for i, e := range events {
		want := uint64(4 + i)
		if e.Seq != want || e.TenantID != "a" || e.Type != inbox.EventMessageCreated || string(e.Data) != fmt.Sprintf(`{"n":%d}`, want) || e.At.IsZero() {
			t.Errorf("event %d = %+v", i, e)
		}
	}
	first, _, err := s.Events(ctx, "a", 0, 1)
	if err != nil || len(first) != 1 || !first[0].At.Equal(at) {
		t.Fatalf("first event = %+v, %v; want At kept as given", first, err)
	}
	if tail, h, err := s.Events(ctx, "a", 10, 5); err != nil || len(tail) != 0 || h != 10 {
		t.Fatalf("Events past head = %v, %d, %v", tail, h, err)
	}
	if only, h, err := s.Events(ctx, "a", 0, 0); err != nil || len(only) != 0 || h != 10 {
		t.Fatalf("Events limit 0 = %v, %d, %v", only, h, err)
	}
	if all, h, err := s.Events(ctx, "a", 0, 1000); err != nil || len(all) != 10 || h != 10 {
		t.Fatalf("Events all = %d, %d, %v", len(all), h, err)
	}
	if _, h, _ := s.Events(ctx, "b", 0, 10); h != 1 {
		t.Fatalf("tenant b head = %d, want 1 (logs are per tenant)", h)
	}
	if o, err := s.Oldest(ctx, "a"); err != nil || o != 1 {
		t.Fatalf("Oldest = %d, %v", o, err)
	}
	published := pub.waitFor(t, 11)
	if len(published) != 11 {
		t.Fatalf("published %d events, want 11", len(published))
	}
	for i, e := range published[:10] {
		if e.Seq != uint64(i+1) || e.TenantID != "a" {
			t.Fatalf("published[%d] = seq %d tenant %q", i, e.Seq, e.TenantID)
		}
	}
}

// testConcurrentAppends runs writers on several tenants at once, some of
// which fail after appending: each tenant's log must still be 1..N with no
// gap or duplicate, and the publisher must get exactly the committed events,
// each tenant's in seq order.
func testConcurrentAppends(t *testing.T, open OpenFunc) {
	pub := newCollector()
	s := open(t, pub)
	tenants := []string{"t1", "t2", "t3"}
	const writers, each = 6, 15
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		committed = map[string]int{}
		errs      = make(chan error, len(tenants)*writers)
	)
	for _, tenant := range tenants {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					fail := (w+i)%5 == 0
					err := s.Update(context.Background(), func(tx inbox.Tx) error {
						for j := range 2 {
							e := &inbox.Event{Type: "test", Data: json.RawMessage(fmt.Sprintf(`{"w":%d,"i":%d,"j":%d}`, w, i, j))}
							if err := tx.Append(tenant, e); err != nil {
								return err
							}
						}
						// A record beside the log, as every service write has.
						if err := tx.Put(inbox.Collection{Tenant: tenant, Name: "things"}, fmt.Sprintf("%d/%d", w, i), rec{}); err != nil {
							return err
						}
						if fail {
							return errFail
						}
						return nil
					})
					if fail {
						if !errors.Is(err, errFail) {
							errs <- fmt.Errorf("failing update = %v", err)
							return
						}
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					committed[tenant] += 2
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, tenant := range tenants {
		want := committed[tenant]
		total += want
		events, h, err := s.Events(context.Background(), tenant, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if int(h) != want || len(events) != want {
			t.Fatalf("tenant %s: head %d, %d events, want %d", tenant, h, len(events), want)
		}
		for i, e := range events {
			if e.Seq != uint64(i+1) {
				t.Fatalf("tenant %s: event %d has seq %d", tenant, i, e.Seq)
			}
		}
		// Two events of one update are adjacent.
		for i := 0; i < len(events); i += 2 {
			if strings.TrimSuffix(string(events[i].Data), `"j":0}`) != strings.TrimSuffix(string(events[i+1].Data), `"j":1}`) {
				t.Fatalf("tenant %s: events %d and %d are from different updates: %s %s", tenant, i+1, i+2, events[i].Data, events[i+1].Data)
			}
		}
	}
	published := pub.waitFor(t, total)
	if len(published) != total {
		t.Fatalf("published %d events, want %d", len(published), total)
	}
	last := map[string]uint64{}
	for _, e := range published {
		if e.Seq != last[e.TenantID]+1 {
			t.Fatalf("tenant %s: published seq %d after %d", e.TenantID, e.Seq, last[e.TenantID])
		}
		last[e.TenantID] = e.Seq
	}
}

var errFail = errors.New("deliberate failure")

// testConcurrentIncrements is the read-modify-write every service update
// does: concurrent Updates must behave as if run one at a time.
func testConcurrentIncrements(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	type counter struct {
		N int `json:"n"`
	}
	colls := []inbox.Collection{{Tenant: "a", Name: "counters"}, {Name: "counters"}}
	const workers, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				err := s.Update(context.Background(), func(tx inbox.Tx) error {
					// Half the writers touch the global counter first.
					order := colls
					if w%2 == 1 {
						order = []inbox.Collection{colls[1], colls[0]}
					}
					for _, c := range order {
						var n counter
						if err := tx.Get(c, "n", &n); err != nil && !errors.Is(err, inbox.ErrNotFound) {
							return err
						}
						n.N++
						if err := tx.Put(c, "n", n); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range colls {
		var n counter
		view(t, s, func(tx inbox.Tx) error { return tx.Get(c, "n", &n) })
		if n.N != workers*each {
			t.Errorf("%v counter = %d, want %d (an increment was lost)", c, n.N, workers*each)
		}
	}
}

func testDurableAcrossReopen(t *testing.T, open OpenFunc) {
	s := open(t, nil)
	c := inbox.Collection{Tenant: "a", Name: "things"}
	update(t, s, func(tx inbox.Tx) error {
		if err := tx.Put(c, "k", rec{V: "kept"}); err != nil {
			return err
		}
		if err := tx.Put(inbox.Collection{Name: "g"}, "k", rec{V: "global"}); err != nil {
			return err
		}
		for range 3 {
			if err := tx.Append("a", &inbox.Event{Type: "x"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Update(context.Background(), func(inbox.Tx) error { return nil }); err == nil {
		t.Error("Update after Close succeeded")
	}
	s = open(t, nil)
	if got, ok := get(t, s, c, "k"); !ok || got.V != "kept" {
		t.Fatalf("after reopen: %+v, %v", got, ok)
	}
	if got, ok := get(t, s, inbox.Collection{Name: "g"}, "k"); !ok || got.V != "global" {
		t.Fatalf("global after reopen: %+v, %v", got, ok)
	}
	if h := head(t, s, "a"); h != 3 {
		t.Fatalf("head after reopen = %d", h)
	}
	update(t, s, func(tx inbox.Tx) error {
		e := &inbox.Event{Type: "y"}
		if err := tx.Append("a", e); err != nil {
			return err
		}
		if e.Seq != 4 {
			return fmt.Errorf("seq after reopen = %d, want 4", e.Seq)
		}
		return nil
	})
}
