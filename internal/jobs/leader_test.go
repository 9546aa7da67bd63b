package jobs

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cutStore is a process's view of the shared store; cut makes every
// write fail, as when the process loses its database connection.
type cutStore struct {
	inbox.Store
	cut atomic.Bool
}

func (s *cutStore) Update(ctx context.Context, fn func(inbox.Tx) error) error {
	if s.cut.Load() {
		return errors.New("connection refused")
	}
	return s.Store.Update(ctx, fn)
}

// runs records which holder runs the job and fails on any overlap.
type runs struct {
	running atomic.Int32
	overlap atomic.Bool
	events  chan string // "start a", "stop a", ...
}

func (r *runs) job(holder string) func(context.Context) error {
	return func(ctx context.Context) error {
		if r.running.Add(1) > 1 {
			r.overlap.Store(true)
		}
		r.events <- "start " + holder
		<-ctx.Done()
		r.running.Add(-1)
		r.events <- "stop " + holder
		return nil
	}
}

func (r *runs) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for the job to start or stop")
		return ""
	}
}

func TestLeaderRunsAJobInOneProcessAndHandsItOver(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	leaderHandover(t, st, st, st)
}

// leaderHandover runs two processes, a and b, with the store each sees,
// through the life of one job's lease: one runs the job while the other
// polls; a graceful stop hands the lease over at once; a holder that
// loses the store stops before its lease runs out, and the standby takes
// over only after it has. probe reads the lease as a third process would.
func leaderHandover(t *testing.T, a, b, probe inbox.Store) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	const ttl = 40 * time.Second
	stores := map[string]*cutStore{"a": {Store: a}, "b": {Store: b}}
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

func TestLeaderWithoutStoreJustRuns(t *testing.T) {
	called := false
	err := NewLeader(LeaderConfig{}).Run(context.Background(), "retention", func(context.Context) error {
		called = true
		return errors.New("boom")
	})
	if !called || err == nil || err.Error() != "boom" {
		t.Fatalf("called %v, err %v", called, err)
	}
}

// hangStore is a store that stops answering writes without an error, as
// behind a network partition: an Update waits until its context ends.
type hangStore struct {
	inbox.Store
	hang atomic.Bool
}

func (s *hangStore) Update(ctx context.Context, fn func(inbox.Tx) error) error {
	if s.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Store.Update(ctx, fn)
}

// A holder whose store hangs stops its job by its deadline, before the
// lease it can no longer renew expires and another process may take it.
func TestLeaderStopsWhenRenewalHangs(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hs := &hangStore{Store: st}
	const ttl = 2 * time.Second // real time: the deadline is a real wait
	l := NewLeader(LeaderConfig{Store: hs, Holder: "a", TTL: ttl, Renew: 20 * time.Millisecond})
	r := &runs{events: make(chan string, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, "retention", r.job("a")) }()
	defer func() {
		cancel()
		<-done
	}()
	if e := r.next(t); e != "start a" {
		t.Fatalf("got %q, want the job to start", e)
	}
	hs.hang.Store(true)
	if e := r.next(t); e != "stop a" {
		t.Fatalf("got %q, want the job to stop", e)
	}
	stopped := time.Now()
	lease, err := inbox.LeaseOf(context.Background(), st, "retention")
	if err != nil {
		t.Fatal(err)
	}
	if !stopped.Before(lease.Until) {
		t.Fatalf("job stopped at %s, after its lease expired at %s", stopped.Format(time.StampMilli), lease.Until.Format(time.StampMilli))
	}
	t.Logf("stopped %s before the lease expired", lease.Until.Sub(stopped))
}
