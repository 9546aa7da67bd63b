package hub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

// lossyBroker is an in-process broker that loses the events messages it
// is told to, as a networked one does when the committing process dies
// before publishing, or fails them with an error.
type lossyBroker struct {
	*hub.LocalBroker
	drop atomic.Int32 // events messages to lose silently
	fail atomic.Int32 // events messages to refuse with an error
}

func (b *lossyBroker) Publish(tenant string, m hub.Message) error {
	if m.Kind == hub.KindEvents {
		if b.drop.Add(-1) >= 0 {
			return nil
		}
		if b.fail.Add(-1) >= 0 {
			return errors.New("broker unavailable")
		}
	}
	return b.LocalBroker.Publish(tenant, m)
}

func (l *growingLog) head(_ context.Context, tenant string) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tenant != "T" {
		return 0, nil
	}
	return uint64(len(l.events)), nil
}

// countingHead counts the head questions asked.
type countingHead struct {
	log *growingLog
	n   atomic.Int64
}

func (c *countingHead) heads(ctx context.Context, tenants []string) (map[string]uint64, error) {
	c.n.Add(1)
	out := make(map[string]uint64, len(tenants))
	for _, id := range tenants {
		head, err := c.log.head(ctx, id)
		if err != nil {
			return nil, err
		}
		out[id] = head
	}
	return out, nil
}

func checkOnceInOrder(t *testing.T, s *sink, total int) {
	t.Helper()
	got := seqs(t, s.waitEvents(t, total))
	if len(got) != total {
		t.Fatalf("seqs = %v, want 1..%d", got, total)
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("seqs = %v, want 1..%d once each, in order", got, total)
		}
	}
}

// The last event of a tenant is lost on its way (nothing reports it, and
// nothing is committed after it). The periodic head check finds the
// sockets behind the store and catches them up, once each, in order.
func TestLostLastEventReachesSocketsWithinTheCheckPeriod(t *testing.T) {
	log := &growingLog{page: 2}
	b := &lossyBroker{LocalBroker: hub.NewLocalBroker()}
	heads := &countingHead{log: log}
	const every = 20 * time.Millisecond
	h := newHub(t, hub.Options{Broker: b, Fill: func(_ context.Context, _ string, since uint64) ([]inbox.Event, error) {
		return log.read(since), nil
	}, Heads: heads.heads, CatchUpEvery: every})
	a, c := newSink(), newSink()
	subscribe(t, h, session("T", "a1", "k1"), a, 0)
	subscribe(t, h, session("T", "a2", "k2"), c, 0)

	h.Publish(log.append(3))
	checkOnceInOrder(t, a, 3)
	b.drop.Store(1)
	h.Publish(log.append(2)) // lost: seqs 4 and 5
	lostAt := time.Now()
	checkOnceInOrder(t, a, 5)
	checkOnceInOrder(t, c, 5)
	took := time.Since(lostAt)
	if took > 2*every+time.Second {
		t.Errorf("the lost events took %v, want about two periods (%v)", took, 2*every)
	}
	if st := h.Stats(); st.Behind < 2 || st.CatchUps < 2 {
		t.Errorf("stats = %+v, want both sockets found behind and caught up", st)
	}
	if heads.n.Load() == 0 {
		t.Error("the store's head was never asked for")
	}

	// Live delivery carries on, with no duplicate of what was caught up,
	// and further checks find nothing to do.
	h.Publish(log.append(1))
	checkOnceInOrder(t, a, 6)
	checkOnceInOrder(t, c, 6)
	before, asked := h.Stats().Behind, heads.n.Load()
	deadline := time.Now().Add(wait)
	for heads.n.Load() < asked+3 {
		if time.Now().After(deadline) {
			t.Fatal("the head checks stopped")
		}
		time.Sleep(every / 2) // polling a counter
	}
	if got := h.Stats().Behind; got != before {
		t.Errorf("sockets up to date were found behind %d more times", got-before)
	}
	checkOnceInOrder(t, a, 6)
}

// A tenant whose events keep flowing is not asked about: its next event
// would reveal a hole at once.
func TestBusyTenantIsNotAskedForItsHead(t *testing.T) {
	log := &growingLog{page: 100}
	heads := &countingHead{log: log}
	const every = 200 * time.Millisecond
	h := newHub(t, hub.Options{Fill: func(_ context.Context, _ string, since uint64) ([]inbox.Event, error) {
		return log.read(since), nil
	}, Heads: heads.heads, CatchUpEvery: every})
	s := newSink()
	subscribe(t, h, session("T", "a1", "k1"), s, 0)
	// Events every twentieth of a period for five periods.
	tick := time.NewTicker(every / 20)
	defer tick.Stop()
	for range 100 {
		<-tick.C
		h.Publish(log.append(1))
	}
	if n := heads.n.Load(); n > 1 {
		t.Errorf("a busy tenant was asked for its head %d times", n)
	}
	checkOnceInOrder(t, s, 100)
}

// A broker that refuses to carry events leaves other processes to their
// head checks, but this process's own sockets are caught up from the
// store at once.
func TestFailedPublishCatchesUpLocalSockets(t *testing.T) {
	log := &growingLog{page: 3}
	b := &lossyBroker{LocalBroker: hub.NewLocalBroker()}
	h := newHub(t, hub.Options{Broker: b, Fill: func(_ context.Context, _ string, since uint64) ([]inbox.Event, error) {
		return log.read(since), nil
	}})
	s := newSink()
	subscribe(t, h, session("T", "a1", "k1"), s, 0)
	h.Publish(log.append(2))
	b.fail.Store(1)
	h.Publish(log.append(3)) // refused
	checkOnceInOrder(t, s, 5)
	h.Publish(log.append(1))
	checkOnceInOrder(t, s, 6)
	if st := h.Stats(); st.CatchUps != 1 {
		t.Errorf("stats = %+v, want one catch-up", st)
	}
}

// A process holding sockets of many quiet tenants asks about them a few
// hundred at a time: a round is a handful of questions, not one per
// tenant.
func TestQuietTenantsAreAskedInBatches(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	heads := func(_ context.Context, tenants []string) (map[string]uint64, error) {
		mu.Lock()
		sizes = append(sizes, len(tenants))
		mu.Unlock()
		return map[string]uint64{}, nil
	}
	const every = 100 * time.Millisecond
	h := newHub(t, hub.Options{Fill: func(_ context.Context, _ string, since uint64) ([]inbox.Event, error) {
		return nil, nil
	}, Heads: heads, CatchUpEvery: every})
	const tenants = 1200
	for i := range tenants {
		subscribe(t, h, session(fmt.Sprintf("T%d", i), "a", "k"), newSink(), 0)
	}
	// Once every tenant is subscribed, a round is 500 + 500 + 200.
	fullRound := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i+2 < len(sizes); i++ {
			if sizes[i] == 500 && sizes[i+1] == 500 && sizes[i+2] == 200 {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(wait)
	for !fullRound() {
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("questions named %v tenants, want a round of 500, 500, 200", sizes)
		}
		time.Sleep(every / 5) // polling what was asked
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range sizes {
		if n > 500 {
			t.Fatalf("a question named %d tenants, want at most 500 (all: %v)", n, sizes)
		}
	}
}
