package nats

import (
	"fmt"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

// replayAndStart does what a socket's owner does after subscribing: it
// writes every event the store has to the socket, then starts the live
// stream after the last one written.
func replayAndStart(t *testing.T, store *logStore, tenant string, sub *hub.Subscription, s *sink) {
	t.Helper()
	store.mu.Lock()
	evs := append([]inbox.Event(nil), store.events[tenant]...)
	store.mu.Unlock()
	var frames [][]byte
	for _, ev := range evs {
		data, err := hub.EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, data)
	}
	if len(frames) > 0 {
		if err := s.Write(t.Context(), frames); err != nil {
			t.Fatal(err)
		}
	}
	var last uint64
	if len(evs) > 0 {
		last = evs[len(evs)-1].Seq
	}
	sub.Start(last)
}

// Sockets join, on processes that did not yet hold the tenant, while
// another process keeps committing: each replays the store, goes live,
// and ends up with 1..N exactly once, in order, whatever was in flight
// while its process's subscription reached the NATS server.
func TestSocketsJoiningWhileEventsAreInFlight(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	const total = 600
	// The writer commits far faster than a recording socket decodes;
	// queues that hold the whole burst keep the slow-consumer rule (a
	// matter of its own, tested in package hub) out of this test.
	opts := hub.Options{QueueSize: 2 * total}
	writer := startProcess(t, "writer", srv.ClientURL(), store, opts)
	var joiners []*process
	for i := range 3 {
		joiners = append(joiners, startProcess(t, fmt.Sprintf("j%d", i), srv.ClientURL(), store, opts))
	}

	milestones := make([]chan struct{}, len(joiners)+1)
	for i := range milestones {
		milestones[i] = make(chan struct{})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		step := total / (len(milestones) + 1)
		for i := 1; i <= total; i++ {
			writer.hub.Publish(store.commit(tenantA, 1))
			if k := i / step; i%step == 0 && k <= len(milestones) {
				close(milestones[k-1]) // a socket joins now, mid-stream
			}
		}
	}()

	var sinks []*sink
	join := func(p *process, agent string) {
		s := newSink()
		sess := session(tenantA, agent, "k")
		sub, err := p.hub.Subscribe(tenantA, sess, s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Close)
		replayAndStart(t, store, tenantA, sub, s)
		sinks = append(sinks, s)
	}
	for i, p := range joiners {
		<-milestones[i]
		join(p, fmt.Sprintf("agent-%d", i))
	}
	// A second socket on a process already subscribed joins too.
	<-milestones[len(joiners)]
	join(joiners[0], "agent-late")
	<-done
	for i, s := range sinks {
		s.waitSeqs(t, fmt.Sprintf("socket %d", i), total)
	}
}

// A process too slow to read its NATS subscription has messages dropped
// by nats.go; the broker notices and the hub reads what was dropped from
// the store, including the trailing events no later one would reveal.
func TestSlowConsumerIsCaughtUpFromTheStore(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{})
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{})
	ben := newSink()
	subscribe(t, p2, session(tenantA, "ben", "k"), ben)

	// A second subscriber of the tenant in p2 that holds up the NATS
	// callback, so messages pile up and are dropped past a small limit.
	release := make(chan struct{})
	var once sync.Once
	cancel, err := p2.broker.Subscribe(tenantA, func(m hub.Message) {
		if m.Kind == hub.KindEvents {
			once.Do(func() { <-release })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	p2.broker.mu.Lock()
	natsSub := p2.broker.tenants[tenantA].sub
	p2.broker.mu.Unlock()
	if err := natsSub.SetPendingLimits(8, -1); err != nil {
		t.Fatal(err)
	}
	slow := natsSub.StatusChanged(natsgo.SubscriptionSlowConsumer)
	before := p2.broker.Stats().Resyncs

	const total = 100
	for range total {
		p1.hub.Publish(store.commit(tenantA, 1)) // one message each
	}
	if err := p1.broker.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-slow:
	case <-time.After(wait):
		t.Fatal("p2's subscription never became a slow consumer")
	}
	close(release)
	ben.waitSeqs(t, "ben", total)
	if dropped, _ := natsSub.Dropped(); dropped == 0 {
		t.Error("nats.go dropped nothing: the test did not exercise a loss")
	}
	if p2.broker.Stats().Resyncs == before {
		t.Error("no catch-up was counted after the drop")
	}
	// Live delivery carries on, without duplicates.
	p1.hub.Publish(store.commit(tenantA, 3))
	ben.waitSeqs(t, "ben", total+3)
}

// Revoking a key on one process closes, with 4401 and within a second,
// the key's sockets on both processes, and no other socket; the others
// keep getting events.
func TestRevocationClosesSocketsOnEveryProcess(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{})
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{})

	revoked := map[string]*sink{"ben on p1": newSink(), "ben on p2": newSink(), "ben again on p2": newSink()}
	subscribe(t, p1, session(tenantA, "ben", "k-ben"), revoked["ben on p1"])
	subscribe(t, p2, session(tenantA, "ben", "k-ben"), revoked["ben on p2"])
	subscribe(t, p2, inbox.Session{Hash: "h-ben-2", TenantID: tenantA, AgentID: "ben", KeyID: "k-ben"}, revoked["ben again on p2"])
	kept := map[string]*sink{"ben's other key": newSink(), "ana": newSink()}
	subscribe(t, p2, session(tenantA, "ben", "k-ben-2"), kept["ben's other key"])
	subscribe(t, p1, session(tenantA, "ana", "k-ana"), kept["ana"])
	// Another tenant's socket with the same key id is not touched.
	kept["other tenant"] = newSink()
	subscribe(t, p2, session(tenantB, "ben", "k-ben"), kept["other tenant"])

	start := time.Now()
	p1.hub.Disconnect(tenantA, inbox.Match{KeyID: "k-ben"})
	for name, s := range revoked {
		s.waitFor(t, name+" closed", func() bool { return len(s.closes) > 0 })
		s.mu.Lock()
		code, took := s.closes[0], s.closed.Sub(start)
		s.mu.Unlock()
		if code != hub.CloseRevoked {
			t.Errorf("%s: close code %d, want %d", name, code, hub.CloseRevoked)
		}
		if took > time.Second {
			t.Errorf("%s: closed %s after the revocation, want under 1s", name, took)
		}
	}
	p2.hub.Publish(store.commit(tenantA, 1))
	for _, name := range []string{"ben's other key", "ana"} {
		kept[name].waitSeqs(t, name, 1)
	}
	for name, s := range kept {
		s.mu.Lock()
		if len(s.closes) != 0 {
			t.Errorf("%s was closed (%v) by a revocation that does not match it", name, s.closes)
		}
		s.mu.Unlock()
	}
}

// A socket that has just subscribed on a process new to the tenant is
// reached by a revocation published at once by another process: Subscribe
// returns only when the NATS server knows of the subscription, so the
// owner's re-check of the credentials after subscribing leaves no window.
func TestRevocationReachesAJustSubscribedSocket(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{})
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{})
	for i := range 25 {
		tenant := fmt.Sprintf("tenant-%d", i)
		s := newSink()
		subscribe(t, p2, session(tenant, "ben", "k"), s)
		p1.hub.Disconnect(tenant, inbox.Match{KeyID: "k"})
		s.waitFor(t, fmt.Sprintf("the socket of %s closed", tenant), func() bool { return len(s.closes) > 0 })
	}
}

// Without periodic heartbeats, a process that joins a tenant still learns
// who is online on the others (what its API reports as online), and their
// sockets see its agents come online.
func TestPresenceReachesALateProcessWithoutHeartbeats(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{})
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{})
	for i := range 10 {
		tenant := fmt.Sprintf("tenant-%d", i)
		ana, ben := newSink(), newSink()
		subscribe(t, p1, session(tenant, "ana", "k1"), ana)
		subscribe(t, p2, session(tenant, "ben", "k2"), ben)
		ana.waitFor(t, "ben online at ana", func() bool { on, _ := ana.presence("ben"); return on })
		// p2 learns of ana from p1's answer to its question, which may
		// come before ben's socket is in: it shows in p2's state, not
		// necessarily as a frame. That state lives in another process
		// as far as this test is concerned, so it is polled.
		waitUntil(t, "p2 to know ana is online", func() bool { return contains(p2.hub.Online(tenant), "ana") })
		if got := p2.hub.Online(tenant); !contains(got, "ben") {
			t.Fatalf("p2 online = %v, want ana and ben", got)
		}
		if got := p1.hub.Online(tenant); !contains(got, "ana") || !contains(got, "ben") {
			t.Fatalf("p1 online = %v, want ana and ben", got)
		}
	}
}

// waitUntil polls cond, which observes another process's state, until it
// holds or the test's wait runs out.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
