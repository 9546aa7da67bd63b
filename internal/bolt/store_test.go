package bolt

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler) // panics in fns are expected here
	}
	s, err := Open(filepath.Join(t.TempDir(), "data", "onebox.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func update(t testing.TB, s *Store, fn func(inbox.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t testing.TB, s *Store, fn func(inbox.Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

type rec struct {
	V string `json:"v"`
}

func TestGetPutDelete(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	global := inbox.Collection{Name: "things"}
	tenA := inbox.Collection{Tenant: "a", Name: "things"}
	tenB := inbox.Collection{Tenant: "b", Name: "things"}

	update(t, s, func(tx inbox.Tx) error {
		for c, v := range map[inbox.Collection]string{global: "g", tenA: "a", tenB: "b"} {
			if err := tx.Put(c, "k", rec{V: v}); err != nil {
				return err
			}
		}
		// A write is visible to a later read of the same fn.
		var got rec
		if err := tx.Get(tenA, "k", &got); err != nil || got.V != "a" {
			return fmt.Errorf("read own write: %v %+v", err, got)
		}
		return tx.Put(tenA, "gone", rec{V: "x"})
	})

	view(t, s, func(tx inbox.Tx) error {
		for c, want := range map[inbox.Collection]string{global: "g", tenA: "a", tenB: "b"} {
			var got rec
			if err := tx.Get(c, "k", &got); err != nil {
				t.Errorf("Get %v: %v", c, err)
			} else if got.V != want {
				t.Errorf("Get %v = %q, want %q (scopes must not mix)", c, got.V, want)
			}
		}
		if err := tx.Get(tenA, "gone", nil); err != nil {
			t.Errorf("existence check: %v", err)
		}
		return nil
	})

	update(t, s, func(tx inbox.Tx) error {
		if err := tx.Delete(tenA, "gone"); err != nil {
			return err
		}
		// Deleting what is absent, even in a missing bucket, is not an error.
		if err := tx.Delete(tenA, "never"); err != nil {
			return err
		}
		return tx.Delete(inbox.Collection{Tenant: "zz", Name: "nothing"}, "k")
	})

	err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(tenA, "gone", &rec{}) })
	if !errors.Is(err, inbox.ErrNotFound) {
		t.Fatalf("Get deleted = %v, want ErrNotFound", err)
	}
	if inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Fatalf("ErrorCode = %v", inbox.ErrorCode(err))
	}
}

func TestMissingBucketsReadAsEmpty(t *testing.T) {
	s := openTest(t, Options{})
	c := inbox.Collection{Tenant: "nobody", Name: "messages"}
	view(t, s, func(tx inbox.Tx) error {
		if err := tx.Get(c, "k", &rec{}); !errors.Is(err, inbox.ErrNotFound) {
			t.Errorf("Get = %v, want ErrNotFound", err)
		}
		if err := tx.Get(inbox.Collection{Name: "tenants"}, "k", &rec{}); !errors.Is(err, inbox.ErrNotFound) {
			t.Errorf("global Get = %v, want ErrNotFound", err)
		}
		if err := tx.Scan(c, "", "", false, func(string, []byte) (bool, error) {
			t.Error("Scan visited a record of a missing bucket")
			return true, nil
		}); err != nil {
			t.Errorf("Scan: %v", err)
		}
		if h, err := tx.Head("nobody"); err != nil || h != 0 {
			t.Errorf("Head = %d, %v", h, err)
		}
		return nil
	})
	events, head, err := s.Events(context.Background(), "nobody", 0, 10)
	if err != nil || len(events) != 0 || head != 0 {
		t.Fatalf("Events = %v, %d, %v", events, head, err)
	}
	if o, err := s.Oldest(context.Background(), "nobody"); err != nil || o != 1 {
		t.Fatalf("Oldest = %d, %v, want 1", o, err)
	}
}

func TestViewRefusesWrites(t *testing.T) {
	s := openTest(t, Options{})
	c := inbox.Collection{Tenant: "a", Name: "things"}
	update(t, s, func(tx inbox.Tx) error { return tx.Put(c, "k", rec{V: "1"}) })
	view(t, s, func(tx inbox.Tx) error {
		if err := tx.Put(c, "k", rec{V: "2"}); !errors.Is(err, errReadOnly) {
			t.Errorf("Put in View = %v", err)
		}
		if err := tx.Delete(c, "k"); !errors.Is(err, errReadOnly) {
			t.Errorf("Delete in View = %v", err)
		}
		if err := tx.Append("a", &inbox.Event{Type: "x"}); !errors.Is(err, errReadOnly) {
			t.Errorf("Append in View = %v", err)
		}
		var got rec
		if err := tx.Get(c, "k", &got); err != nil || got.V != "1" {
			t.Errorf("Get in View = %+v, %v", got, err)
		}
		return nil
	})
}

func TestReservedAndInvalidNames(t *testing.T) {
	s := openTest(t, Options{})
	for _, c := range []inbox.Collection{
		{Tenant: "a", Name: "events"},
		{Tenant: "a", Name: "meta"},
		{Tenant: "a", Name: ""},
	} {
		if err := s.Update(context.Background(), func(tx inbox.Tx) error { return tx.Put(c, "k", 1) }); err == nil {
			t.Errorf("Put into %+v succeeded", c)
		}
	}
	// Global collections may use those names: globals have no event log.
	update(t, s, func(tx inbox.Tx) error { return tx.Put(inbox.Collection{Name: "events"}, "k", 1) })
}

func TestScan(t *testing.T) {
	s := openTest(t, Options{})
	c := inbox.Collection{Tenant: "a", Name: "messages"}
	keys := []string{"a", "a/1", "a/2", "a/3", "a0", "b/1", "b/2", "\xff\xff"}
	update(t, s, func(tx inbox.Tx) error {
		for _, k := range keys {
			if err := tx.Put(c, k, rec{V: hex.EncodeToString([]byte(k))}); err != nil {
				return err
			}
		}
		return nil
	})

	scan := func(prefix, after string, reverse bool, limit int) []string {
		t.Helper()
		var got []string
		view(t, s, func(tx inbox.Tx) error {
			return tx.Scan(c, prefix, after, reverse, func(k string, raw []byte) (bool, error) {
				var r rec
				if err := json.Unmarshal(raw, &r); err != nil || r.V != hex.EncodeToString([]byte(k)) {
					return false, fmt.Errorf("raw of %q = %s (%v)", k, raw, err)
				}
				got = append(got, k)
				return limit == 0 || len(got) < limit, nil
			})
		})
		return got
	}

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
		{"a", "", false, 0, []string{"a", "a/1", "a/2", "a/3", "a0"}},
		{"", "", false, 0, keys},
		{"", "", true, 3, []string{"\xff\xff", "b/2", "b/1"}},
		{"", "b/1", true, 2, []string{"a0", "a/3"}},
		{"\xff", "", true, 0, []string{"\xff\xff"}},
		{"b/", "", false, 1, []string{"b/1"}},
		{"c", "", false, 0, nil},
	} {
		got := scan(tc.prefix, tc.after, tc.reverse, tc.limit)
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

// Writing from a Scan callback must neither skip nor repeat records, even
// though bbolt cursors are not stable across writes.
func TestScanWhileWriting(t *testing.T) {
	s := openTest(t, Options{})
	c := inbox.Collection{Tenant: "a", Name: "snoozes"}
	update(t, s, func(tx inbox.Tx) error {
		for i := range 500 {
			if err := tx.Put(c, fmt.Sprintf("k%04d", i), rec{V: strings.Repeat("x", 100)}); err != nil {
				return err
			}
		}
		return nil
	})
	for _, reverse := range []bool{false, true} {
		var seen []string
		update(t, s, func(tx inbox.Tx) error {
			return tx.Scan(c, "k", "", reverse, func(k string, _ []byte) (bool, error) {
				seen = append(seen, k)
				if err := tx.Delete(c, k); err != nil {
					return false, err
				}
				// A write outside the scanned range too, to move pages around.
				return true, tx.Put(c, "z"+k, rec{V: k})
			})
		})
		if len(seen) != 500 {
			t.Fatalf("reverse=%v: visited %d records, want 500", reverse, len(seen))
		}
		for i := 1; i < len(seen); i++ {
			if (seen[i] <= seen[i-1]) != reverse {
				t.Fatalf("reverse=%v: out of order at %d: %q then %q", reverse, i, seen[i-1], seen[i])
			}
		}
		// Put the records back under "k" for the reverse round.
		update(t, s, func(tx inbox.Tx) error {
			return tx.Scan(c, "z", "", false, func(k string, _ []byte) (bool, error) {
				if err := tx.Delete(c, k); err != nil {
					return false, err
				}
				return true, tx.Put(c, k[1:], rec{})
			})
		})
	}
}

// bbolt's Prev and Last misbehave on pages emptied earlier in the same write
// transaction; compare Scan against a plain sorted model after deleting
// whole runs of keys, both inside that transaction and after commit.
func TestScanAfterDeletesMatchesModel(t *testing.T) {
	s := openTest(t, Options{})
	c := inbox.Collection{Tenant: "a", Name: "messages"}
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]bool{}
	for i := range 3000 {
		model[fmt.Sprintf("%c/%05d", 'a'+i%3, i)] = true
	}
	check := func(tx inbox.Tx, round int) error {
		var keys []string
		for k := range model {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for range 40 {
			prefix := []string{"", "a/", "b/", "c/", "b/01", "d"}[rng.IntN(6)]
			after := ""
			if rng.IntN(2) == 0 {
				after = fmt.Sprintf("%c/%05d", 'a'+rng.IntN(3), rng.IntN(3000))
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
			if err := tx.Put(c, k, rec{V: strings.Repeat("x", 200)}); err != nil {
				return err
			}
		}
		return nil
	})
	for round := range 6 {
		update(t, s, func(tx inbox.Tx) error {
			// Delete a long run (emptying whole pages) and some scattered keys.
			from := rng.IntN(3000)
			for i := from; i < from+600 && i < 3000; i++ {
				k := fmt.Sprintf("%c/%05d", 'a'+i%3, i)
				delete(model, k)
				if err := tx.Delete(c, k); err != nil {
					return err
				}
			}
			for range 50 {
				i := rng.IntN(3000)
				k := fmt.Sprintf("%c/%05d", 'a'+i%3, i)
				delete(model, k)
				if err := tx.Delete(c, k); err != nil {
					return err
				}
			}
			return check(tx, round)
		})
		view(t, s, func(tx inbox.Tx) error { return check(tx, round) })
	}
	// Everything deleted in one transaction: Last would never return.
	update(t, s, func(tx inbox.Tx) error {
		for k := range model {
			delete(model, k)
			if err := tx.Delete(c, k); err != nil {
				return err
			}
		}
		return check(tx, 99)
	})
}

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "b", "a\xff": "b", "\xff\xff": "", "ab": "ac"} {
		got := prefixEnd([]byte(in))
		if string(got) != want || (want == "" && got != nil) {
			t.Errorf("prefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAppendEventsOldest(t *testing.T) {
	s := openTest(t, Options{})
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

	events, head, err := s.Events(ctx, "a", 3, 4)
	if err != nil || head != 10 || len(events) != 4 {
		t.Fatalf("Events = %d events, head %d, %v", len(events), head, err)
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
	if tail, head, err := s.Events(ctx, "a", 10, 5); err != nil || len(tail) != 0 || head != 10 {
		t.Fatalf("Events past head = %v, %d, %v", tail, head, err)
	}
	if only, head, err := s.Events(ctx, "a", 0, 0); err != nil || len(only) != 0 || head != 10 {
		t.Fatalf("Events limit 0 = %v, %d, %v", only, head, err)
	}
	if _, head, _ := s.Events(ctx, "b", 0, 10); head != 1 {
		t.Fatalf("tenant b head = %d, want 1 (logs are per tenant)", head)
	}
	if o, err := s.Oldest(ctx, "a"); err != nil || o != 1 {
		t.Fatalf("Oldest = %d, %v", o, err)
	}
}

func TestTxUnusableAfterFn(t *testing.T) {
	s := openTest(t, Options{})
	var leaked inbox.Tx
	update(t, s, func(tx inbox.Tx) error { leaked = tx; return nil })
	if err := leaked.Put(inbox.Collection{Name: "x"}, "k", 1); !errors.Is(err, errFinished) {
		t.Fatalf("Put on a finished tx = %v", err)
	}
	if _, err := leaked.Head("a"); !errors.Is(err, errFinished) {
		t.Fatalf("Head on a finished tx = %v", err)
	}
}

// TestAllowSyncThreads: the store's fsync threads get Ps of their own, once
// however often it is called, and an operator's GOMAXPROCS is left alone.
func TestAllowSyncThreads(t *testing.T) {
	defer runtime.SetDefaultGOMAXPROCS()
	t.Setenv("GOMAXPROCS", "")
	os.Unsetenv("GOMAXPROCS")
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	for range 2 {
		before, after, changed := AllowSyncThreads()
		if !changed || before != def || after != def+SyncThreads || runtime.GOMAXPROCS(0) != def+SyncThreads {
			t.Fatalf("AllowSyncThreads() = %d, %d, %v; GOMAXPROCS %d; want %d, %d, true", before, after, changed, runtime.GOMAXPROCS(0), def, def+SyncThreads)
		}
	}
	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(1)
	if _, after, changed := AllowSyncThreads(); changed || after != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("with GOMAXPROCS=1 set: after %d, changed %v, GOMAXPROCS %d; want it left at 1", after, changed, runtime.GOMAXPROCS(0))
	}
}
