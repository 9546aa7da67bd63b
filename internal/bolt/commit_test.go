package bolt

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// recorder is a Publisher that keeps everything it was handed.
type recorder struct {
	mu      sync.Mutex
	events  []inbox.Event
	batches int
	changed chan struct{} // nudged after every Publish
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) Publish(events []inbox.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, events...)
	r.batches++
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until n events were published: publication follows the
// commit on a goroutine of its own.
func (r *recorder) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		got := len(r.events)
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("published %d events, want %d", got, n)
		}
	}
}

func (r *recorder) snapshot() []inbox.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]inbox.Event(nil), r.events...)
}

// commits records OnCommit calls.
type commits struct {
	mu    sync.Mutex
	sizes []int
}

func (c *commits) record(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sizes = append(c.sizes, n)
}

func (c *commits) get() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes...)
}

// gate lets a test hold the committer inside a request and know when other
// requests are queued, so batches are built deterministically without sleeps.
type gate struct {
	s        *Store
	enqueued chan struct{}
}

// newGate must be called while no Update is in flight; every later Update
// signals it, so create it after setup writes.
func newGate(s *Store) *gate {
	g := &gate{s: s, enqueued: make(chan struct{}, 1024)}
	s.testEnqueued = func() { g.enqueued <- struct{}{} } // set before any Update
	return g
}

// plug starts an Update that blocks the committer until release is called;
// it appends one event of type "plug" to tenant.
func (g *gate) plug(tenant string) (release func() error) {
	started, rel := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- g.s.Update(context.Background(), func(tx inbox.Tx) error {
			close(started)
			<-rel
			return tx.Append(tenant, &inbox.Event{Type: "plug"})
		})
	}()
	<-started
	<-g.enqueued
	return func() error { close(rel); return <-errc }
}

// queue starts an Update and returns once it is queued behind earlier ones.
func (g *gate) queue(ctx context.Context, fn func(inbox.Tx) error) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- g.s.Update(ctx, fn) }()
	<-g.enqueued
	return errc
}

func TestGroupCommitConcurrent(t *testing.T) {
	const writers, perWriter = 64, 40
	tenants := []string{"t0", "t1", "t2"}
	pub := newRecorder()
	var cm commits
	s := openTest(t, Options{Publisher: pub, OnCommit: func(_ time.Duration, n int) { cm.record(n) }})

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				tenant := tenants[(w+i)%len(tenants)]
				err := s.Update(context.Background(), func(tx inbox.Tx) error {
					e := &inbox.Event{Type: "msg", Data: []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))}
					if err := tx.Append(tenant, e); err != nil {
						return err
					}
					return tx.Put(inbox.Collection{Tenant: tenant, Name: "messages"}, fmt.Sprintf("%d/%d", w, i), e.Seq)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Update: %v", err)
	}

	want := map[string]int{}
	for w := range writers {
		for i := range perWriter {
			want[tenants[(w+i)%len(tenants)]]++
		}
	}
	for _, tenant := range tenants {
		events, head, err := s.Events(context.Background(), tenant, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if head != uint64(want[tenant]) || len(events) != want[tenant] {
			t.Fatalf("%s: head %d, %d events, want %d", tenant, head, len(events), want[tenant])
		}
		for i, e := range events {
			if e.Seq != uint64(i+1) {
				t.Fatalf("%s: event %d has seq %d (gap or duplicate)", tenant, i, e.Seq)
			}
		}
	}

	// Publication: each event exactly once, in seq order per tenant.
	published := 0
	for _, n := range want {
		published += n
	}
	pub.waitFor(t, published)
	next := map[string]uint64{}
	for _, e := range pub.snapshot() {
		if e.Seq != next[e.TenantID]+1 {
			t.Fatalf("published %s seq %d after %d", e.TenantID, e.Seq, next[e.TenantID])
		}
		next[e.TenantID] = e.Seq
	}
	for _, tenant := range tenants {
		if next[tenant] != uint64(want[tenant]) {
			t.Fatalf("published %d events of %s, want %d", next[tenant], tenant, want[tenant])
		}
	}

	total := 0
	for _, n := range cm.get() {
		total += n
	}
	if total != writers*perWriter {
		t.Fatalf("OnCommit counted %d requests, want %d", total, writers*perWriter)
	}
	t.Logf("%d requests in %d commits, %d publishes", total, len(cm.get()), pub.batches)
}

func TestFailingRequestIsUndoneAlone(t *testing.T) {
	pub := newRecorder()
	var cm commits
	s := openTest(t, Options{Publisher: pub, OnCommit: func(_ time.Duration, n int) { cm.record(n) }})
	ctx := context.Background()
	c := inbox.Collection{Tenant: "a", Name: "things"}
	glob := inbox.Collection{Name: "things"}
	update(t, s, func(tx inbox.Tx) error { return tx.Put(c, "pre", rec{V: "pre"}) })
	g := newGate(s) // after the setup write, so every signal is ours

	release := g.plug("a") // seq 1
	appendPut := func(typ, key string) func(inbox.Tx) error {
		return func(tx inbox.Tx) error {
			if err := tx.Append("a", &inbox.Event{Type: typ}); err != nil {
				return err
			}
			return tx.Put(c, key, rec{V: typ})
		}
	}
	boom := errors.New("boom")
	ok1 := g.queue(ctx, appendPut("ok1", "k")) // seq 2
	fail := g.queue(ctx, func(tx inbox.Tx) error {
		if err := appendPut("fail", "new")(tx); err != nil { // takes seq 3...
			return err
		}
		if err := tx.Put(c, "k", rec{V: "fail"}); err != nil { // overwrites ok1's write
			return err
		}
		if err := tx.Put(c, "k", rec{V: "fail again"}); err != nil {
			return err
		}
		if err := tx.Delete(c, "pre"); err != nil {
			return err
		}
		if err := tx.Put(glob, "g", rec{V: "fail"}); err != nil {
			return err
		}
		// Its own writes are visible to it before it fails.
		if err := tx.Get(c, "pre", nil); !errors.Is(err, inbox.ErrNotFound) {
			return fmt.Errorf("own delete not visible: %v", err)
		}
		return fmt.Errorf("service said no: %w", boom)
	})
	ok2 := g.queue(ctx, appendPut("ok2", "k2")) // ...so this gets seq 3
	panics := g.queue(ctx, func(tx inbox.Tx) error {
		if err := appendPut("panic", "p")(tx); err != nil {
			return err
		}
		panic("kaboom")
	})
	ok3 := g.queue(ctx, appendPut("ok3", "k3")) // seq 4

	if err := release(); err != nil {
		t.Fatalf("plug: %v", err)
	}
	for name, ch := range map[string]<-chan error{"ok1": ok1, "ok2": ok2, "ok3": ok3} {
		if err := <-ch; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := <-fail; !errors.Is(err, boom) {
		t.Errorf("failing request got %v, want its own error", err)
	}
	if err := <-panics; err == nil || !strings.Contains(err.Error(), "kaboom") {
		t.Errorf("panicking request got %v", err)
	}
	if got := cm.get(); len(got) != 3 || got[1] != 1 || got[2] != 5 {
		t.Fatalf("commit sizes = %v, want [1 1 5]: setup, plug, then the five in one batch", got)
	}

	events, head, err := s.Events(ctx, "a", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Fatalf("log has a gap: %+v", events)
		}
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "plug,ok1,ok2,ok3" || head != 4 {
		t.Fatalf("log = %v head %d, want plug,ok1,ok2,ok3 head 4", types, head)
	}
	var published []string
	pub.waitFor(t, 4)
	for _, e := range pub.snapshot() {
		published = append(published, fmt.Sprintf("%s:%d", e.Type, e.Seq))
	}
	if strings.Join(published, ",") != "plug:1,ok1:2,ok2:3,ok3:4" {
		t.Fatalf("published %v", published)
	}

	view(t, s, func(tx inbox.Tx) error {
		want := map[string]string{"pre": "pre", "k": "ok1", "k2": "ok2", "k3": "ok3", "new": "", "p": ""}
		for key, v := range want {
			var got rec
			err := tx.Get(c, key, &got)
			switch {
			case v == "" && !errors.Is(err, inbox.ErrNotFound):
				t.Errorf("%s: got %+v, %v; want it undone", key, got, err)
			case v != "" && (err != nil || got.V != v):
				t.Errorf("%s = %+v, %v; want %q", key, got, err, v)
			}
		}
		if err := tx.Get(glob, "g", nil); !errors.Is(err, inbox.ErrNotFound) {
			t.Errorf("global write of the failed request survived: %v", err)
		}
		return nil
	})

	// The committer survived the panic.
	update(t, s, appendPut("after", "after"))
	if _, head, _ := s.Events(ctx, "a", 0, 0); head != 5 {
		t.Fatalf("head after panic = %d, want 5", head)
	}
}

func TestCancelWhileQueuedWritesNothing(t *testing.T) {
	s := openTest(t, Options{})
	g := newGate(s)
	c := inbox.Collection{Tenant: "a", Name: "things"}
	release := g.plug("a")
	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	errc := g.queue(ctx, func(tx inbox.Tx) error {
		ran = true
		return tx.Put(c, "k", rec{V: "cancelled"})
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Update = %v, want context.Canceled", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	update(t, s, func(inbox.Tx) error { return nil }) // the committer has moved past it
	if ran {
		t.Fatal("fn of a request cancelled while queued ran")
	}
	view(t, s, func(tx inbox.Tx) error {
		if err := tx.Get(c, "k", nil); !errors.Is(err, inbox.ErrNotFound) {
			t.Errorf("cancelled write landed: %v", err)
		}
		return nil
	})

	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := s.Update(done, func(inbox.Tx) error { t.Error("ran"); return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a done ctx = %v", err)
	}
}

func TestCloseFinishesQueuedWork(t *testing.T) {
	path := t.TempDir() + "/db"
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(s)
	release := g.plug("a")
	var queued []<-chan error
	for i := range 3 {
		queued = append(queued, g.queue(context.Background(), func(tx inbox.Tx) error {
			return tx.Put(inbox.Collection{Name: "c"}, fmt.Sprint(i), i)
		}))
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range queued {
		if err := <-ch; err != nil {
			t.Fatalf("queued Update: %v", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Update(context.Background(), func(inbox.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close = %v", err)
	}
	if err := s.View(context.Background(), func(inbox.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("View after Close = %v", err)
	}

	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	view(t, s2, func(tx inbox.Tx) error {
		for i := range 3 {
			if err := tx.Get(inbox.Collection{Name: "c"}, fmt.Sprint(i), nil); err != nil {
				t.Errorf("queued write %d lost: %v", i, err)
			}
		}
		return nil
	})
}

func TestPublisherPanicDoesNotKillCommitter(t *testing.T) {
	calls := make(chan struct{}, 2)
	s := openTest(t, Options{Publisher: inbox.PublisherFunc(func([]inbox.Event) {
		calls <- struct{}{}
		panic("publisher bug")
	})})
	for i := range 2 {
		update(t, s, func(tx inbox.Tx) error { return tx.Append("a", &inbox.Event{Type: "x"}) })
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			t.Fatalf("publisher not called for update %d after a panic", i+1)
		}
	}
}

// t.FailNow inside an Update fn exits the committer goroutine; the store must
// fail that batch and carry on rather than hang every later caller.
func TestGoexitInFnDoesNotStrandTheQueue(t *testing.T) {
	s := openTest(t, Options{})
	err := s.Update(context.Background(), func(tx inbox.Tx) error {
		if err := tx.Append("a", &inbox.Event{Type: "lost"}); err != nil {
			return err
		}
		runtime.Goexit()
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "Goexit") {
		t.Fatalf("Update = %v, want a Goexit error", err)
	}
	update(t, s, func(tx inbox.Tx) error { return tx.Append("a", &inbox.Event{Type: "kept"}) })
	events, head, err := s.Events(context.Background(), "a", 0, 10)
	if err != nil || head != 1 || len(events) != 1 || events[0].Type != "kept" {
		t.Fatalf("Events = %+v, head %d, %v", events, head, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after a replaced committer: %v", err)
	}
}
