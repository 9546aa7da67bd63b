package inbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/postgres"
)

func openLeaseStore(t *testing.T) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestLeaseIsHeldByOneHolderUntilItExpires(t *testing.T) {
	st := openLeaseStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	const ttl = 30 * time.Second

	a, err := inbox.AcquireLease(ctx, st, "outbox", "node-a", t0, ttl)
	if err != nil || !a.Held("node-a", t0) || !a.Until.Equal(t0.Add(ttl)) {
		t.Fatalf("a acquires a free lease: %+v, %v", a, err)
	}
	b, err := inbox.AcquireLease(ctx, st, "outbox", "node-b", t0.Add(ttl-time.Nanosecond), ttl)
	if err != nil || b.Held("node-b", t0) || b.Holder != "node-a" {
		t.Fatalf("b acquires a held lease: %+v, %v", b, err)
	}
	if _, err := inbox.RenewLease(ctx, st, "outbox", "node-b", t0.Add(time.Second), ttl); inbox.ErrorCode(err) != inbox.CodeConflict {
		t.Fatalf("b renews a's lease: %v", err)
	}
	// Another name is another lease.
	if l, err := inbox.AcquireLease(ctx, st, "retention", "node-b", t0, ttl); err != nil || l.Holder != "node-b" {
		t.Fatalf("b takes another lease: %+v, %v", l, err)
	}

	// a renews: the expiry moves.
	a, err = inbox.RenewLease(ctx, st, "outbox", "node-a", t0.Add(20*time.Second), ttl)
	if err != nil || !a.Until.Equal(t0.Add(50*time.Second)) {
		t.Fatalf("a renews: %+v, %v", a, err)
	}
	// a stops renewing: at Until, b takes it over, and a's renewal fails.
	b, err = inbox.AcquireLease(ctx, st, "outbox", "node-b", t0.Add(50*time.Second), ttl)
	if err != nil || b.Holder != "node-b" {
		t.Fatalf("b takes over the expired lease: %+v, %v", b, err)
	}
	if _, err := inbox.RenewLease(ctx, st, "outbox", "node-a", t0.Add(51*time.Second), ttl); inbox.ErrorCode(err) != inbox.CodeConflict {
		t.Fatalf("a renews a lease b took: %v", err)
	}

	// Release by a non-holder changes nothing; by the holder frees it.
	if err := inbox.ReleaseLease(ctx, st, "outbox", "node-a"); err != nil {
		t.Fatal(err)
	}
	if l, _ := inbox.LeaseOf(ctx, st, "outbox"); l.Holder != "node-b" {
		t.Fatalf("after a's release: %+v", l)
	}
	if err := inbox.ReleaseLease(ctx, st, "outbox", "node-b"); err != nil {
		t.Fatal(err)
	}
	if l, _ := inbox.LeaseOf(ctx, st, "outbox"); l != (inbox.Lease{}) {
		t.Fatalf("after b's release: %+v", l)
	}
	if l, err := inbox.AcquireLease(ctx, st, "outbox", "node-a", t0.Add(52*time.Second), ttl); err != nil || l.Holder != "node-a" {
		t.Fatalf("a takes the released lease at once: %+v, %v", l, err)
	}
}

func TestLeaseRejectsBadInput(t *testing.T) {
	st := openLeaseStore(t)
	ctx := context.Background()
	now := time.Now()
	for _, c := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "a", time.Second}, {"x", "", time.Second}, {"x", "a", 0}, {"x", "a", -time.Second}} {
		if _, err := inbox.AcquireLease(ctx, st, c.name, c.holder, now, c.ttl); inbox.ErrorCode(err) != inbox.CodeInvalid {
			t.Errorf("acquire(%q, %q, %s): %v, want invalid", c.name, c.holder, c.ttl, err)
		}
	}
	if l, _ := inbox.LeaseOf(ctx, st, "x"); l != (inbox.Lease{}) {
		t.Fatalf("bad input wrote %+v", l)
	}
}

// Many holders racing for a free lease: exactly one wins.
func TestLeaseRaceHasOneWinner(t *testing.T) {
	st := openLeaseStore(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	holders := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	won := make(chan string, len(holders))
	var wg sync.WaitGroup
	for _, h := range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := inbox.AcquireLease(ctx, st, "outbox", h, now, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if l.Held(h, now) {
				won <- h
			}
		}()
	}
	wg.Wait()
	close(won)
	var winners []string
	for h := range won {
		winners = append(winners, h)
	}
	if len(winners) != 1 {
		t.Fatalf("winners %v, want exactly one", winners)
	}
}

// On PostgreSQL, where several processes write at once, holders in two
// processes (two stores on one database) race for the lease, round after
// round as it expires: each round has exactly one winner.
func TestLeaseRaceHasOneWinnerOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	var stores []inbox.Store
	for range 2 {
		st, err := postgres.Open(ctx, dsn, postgres.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores = append(stores, st)
	}
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	const ttl = time.Minute
	for round := range 5 {
		now := t0.Add(time.Duration(round) * 2 * ttl) // the last round's lease has expired
		start := make(chan struct{})
		won := make(chan string, 8)
		var wg sync.WaitGroup
		for i := range 8 {
			holder := fmt.Sprintf("node-%d", i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := inbox.AcquireLease(ctx, stores[i%2], "outbox", holder, now, ttl)
				if err != nil {
					t.Error(err)
					return
				}
				if l.Held(holder, now) {
					won <- holder
				}
			}()
		}
		close(start)
		wg.Wait()
		close(won)
		var winners []string
		for h := range won {
			winners = append(winners, h)
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: winners %v, want exactly one", round, winners)
		}
		if l, err := inbox.LeaseOf(ctx, stores[0], "outbox"); err != nil || l.Holder != winners[0] {
			t.Fatalf("round %d: lease %+v, %v; want held by %s", round, l, err, winners[0])
		}
	}
}
