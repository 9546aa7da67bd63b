package jobs

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// openPG opens a store on dsn as one server process does: its own pool
// of connections, so two of them on one DSN are two processes to the
// database.
func openPG(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The lease on PostgreSQL, where it is what keeps several processes from
// running one job at once: two processes, each with its own connection
// pool on one database, take turns as the bbolt test has them, and the
// lease each writes is what the other reads.
func TestLeaderHandsOverOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	clk := &clock{t: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	const ttl = 40 * time.Second
	stores := map[string]*cutStore{"a": {Store: openPG(t, dsn)}, "b": {Store: openPG(t, dsn)}}
	probe := openPG(t, dsn) // a third process that only reads the lease
	leaseOf := func() inbox.Lease {
		t.Helper()
		l, err := inbox.LeaseOf(context.Background(), probe, "outbox")
		if err != nil {
			t.Fatalf("read lease: %v", err)
		}
		return l
	}
	r := &runs{events: make(chan string, 16)}
	cancels := map[string]context.CancelFunc{}
	done := map[string]chan error{}
	start := func(holder string) {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[holder] = cancel
		ch := make(chan error, 1)
		done[holder] = ch
		l := NewLeader(LeaderConfig{Store: stores[holder], Holder: holder, TTL: ttl, Renew: 2 * time.Millisecond, Now: clk.Now})
		job := r.job(holder)
		go func() { ch <- l.Run(ctx, "outbox", job) }()
	}
	stop := func(holder string) {
		t.Helper()
		cancels[holder]()
		delete(cancels, holder)
		select {
		case err := <-done[holder]:
			if err != nil {
				t.Errorf("Run of %s: %v", holder, err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("Run of %s did not return after cancel", holder)
		}
	}
	defer func() { // a failed test's processes still stop
		for h, cancel := range cancels {
			cancel()
			<-done[h]
		}
	}()
	other := map[string]string{"a": "b", "b": "a"}

	start("a")
	start("b")
	first := r.next(t)
	if first != "start a" && first != "start b" {
		t.Fatalf("first event %q", first)
	}
	holder := first[len("start "):]
	// The standby polls every 2 ms against a lease that stays valid (the
	// clock does not move): it must not start, and the lease must not move.
	for range 20 {
		if l := leaseOf(); l.Holder != holder {
			t.Fatalf("lease %+v, want held by %s", l, holder)
		}
	}

	// A graceful stop hands the lease back: the standby starts at once.
	stop(holder)
	if e := r.next(t); e != "stop "+holder {
		t.Fatalf("got %q, want the holder to stop", e)
	}
	if e := r.next(t); e != "start "+other[holder] {
		t.Fatalf("got %q, want %s to take over", e, other[holder])
	}
	holder = other[holder]
	start(other[holder]) // the stopped process comes back as the standby

	// The holder loses the database: it stops at 3/4 of the TTL after its
	// last renewal, while its lease still stands, so nobody runs the job.
	stores[holder].cut.Store(true)
	clk.Advance(ttl*3/4 + time.Second)
	if e := r.next(t); e != "stop "+holder {
		t.Fatalf("got %q, want the cut-off holder to stop", e)
	}
	if l := leaseOf(); l.Holder != holder {
		t.Fatalf("lease %+v taken before it expired", l)
	}
	// Past the TTL the standby takes the job.
	clk.Advance(ttl / 4)
	if e := r.next(t); e != "start "+other[holder] {
		t.Fatalf("got %q, want %s to take over after the TTL", e, other[holder])
	}
	if l := leaseOf(); l.Holder != other[holder] || !clk.Now().Before(l.Until) {
		t.Fatalf("lease %+v at %s, want held by %s", l, clk.Now(), other[holder])
	}

	// The cut-off process gets the database back: it finds the lease
	// taken and waits.
	stores[holder].cut.Store(false)
	for range 20 {
		if l := leaseOf(); l.Holder != other[holder] {
			t.Fatalf("lease %+v, want held by %s", l, other[holder])
		}
	}
	// The standby stops first: stopped after the holder, it could take the
	// lease the holder hands back and start once more.
	stop(holder)
	stop(other[holder])
	if r.overlap.Load() {
		t.Fatal("the job ran in two processes at once")
	}
	close(r.events)
	for e := range r.events {
		if e != "stop "+other[holder] {
			t.Errorf("unexpected %q at the end", e)
		}
	}
}
