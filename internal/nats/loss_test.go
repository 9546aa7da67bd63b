package nats

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/onebox/onebox/internal/hub"
)

// catchUpEvery is the head-check period of these tests' processes.
const catchUpEvery = 100 * time.Millisecond

func (l *logStore) heads(_ context.Context, tenants []string) (map[string]uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(tenants))
	for _, t := range tenants {
		if n := len(l.events[t]); n > 0 {
			out[t] = uint64(n)
		}
	}
	return out, nil
}

// startChecking starts a process whose hub checks the store's head every
// catchUpEvery; wrap, when set, stands between the hub and the broker.
func startChecking(t *testing.T, name, url string, store *logStore, wrap func(*Broker) hub.Broker, extra ...natsgo.Option) *process {
	t.Helper()
	extra = append([]natsgo.Option{natsgo.ReconnectWait(20 * time.Millisecond)}, extra...)
	b, err := Connect(Options{URL: url, Name: name, NATS: extra})
	if err != nil {
		t.Fatal(err)
	}
	var hb hub.Broker = b
	if wrap != nil {
		hb = wrap(b)
	}
	h := hub.New(hub.Options{Broker: hb, Node: name, Fill: store.fill, Heads: store.heads, CatchUpEvery: catchUpEvery})
	t.Cleanup(func() {
		h.Close()
		b.Close()
	})
	return &process{name: name, broker: b, hub: h}
}

// dyingBroker loses the next events message it is given, before it reaches
// anyone: the process committed the events and was killed before it could
// publish them.
type dyingBroker struct {
	*Broker
	drop atomic.Bool
}

func (d *dyingBroker) Publish(tenantID string, m hub.Message) error {
	if m.Kind == hub.KindEvents && d.drop.CompareAndSwap(true, false) {
		return nil
	}
	return d.Broker.Publish(tenantID, m)
}

// waitSeqsWithin is waitSeqs, and fails if the events took longer than
// limit since from.
func waitSeqsWithin(t *testing.T, s *sink, name string, n int, from time.Time, limit time.Duration) {
	t.Helper()
	s.waitSeqs(t, name, n)
	if took := time.Since(from); took > limit {
		t.Errorf("%s got the lost events after %v, want within %v", name, took, limit)
	}
}

// The lost-event bound: two head-check periods, and a second for a busy
// test machine.
const lossBound = 2*catchUpEvery + time.Second

// A process commits events and dies before publishing them; nothing is
// committed after them. Sockets on the tenant's other processes still get
// them from the store within the head-check bound, exactly once, in order.
func TestEventsLostBeforePublishReachOtherProcesses(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	var dying *dyingBroker
	p1 := startChecking(t, "p1", srv.ClientURL(), store, func(b *Broker) hub.Broker {
		dying = &dyingBroker{Broker: b}
		return dying
	})
	p2 := startChecking(t, "p2", srv.ClientURL(), store, nil)
	p3 := startChecking(t, "p3", srv.ClientURL(), store, nil)
	s2, s3 := newSink(), newSink()
	subscribe(t, p2, session(tenantA, "ben", "k2"), s2)
	subscribe(t, p3, session(tenantA, "cy", "k3"), s3)

	p1.hub.Publish(store.commit(tenantA, 4))
	s2.waitSeqs(t, "ben", 4)
	s3.waitSeqs(t, "cy", 4)
	// The catch-up every new subscription gets is over, so it cannot be
	// what delivers the lost events.
	waitUntil(t, "the subscriptions' first catch-ups", func() bool {
		return p2.hub.Stats().CatchUps >= 1 && p3.hub.Stats().CatchUps >= 1
	})

	dying.drop.Store(true)
	p1.hub.Publish(store.commit(tenantA, 3)) // committed, never published
	lost := time.Now()
	waitSeqsWithin(t, s2, "ben", 7, lost, lossBound)
	waitSeqsWithin(t, s3, "cy", 7, lost, lossBound)
	if st := p2.hub.Stats(); st.Behind == 0 {
		t.Errorf("p2 stats %+v (broker %+v): no socket was found behind the head", st, p2.broker.Stats())
	}

	// Live delivery carries on without a duplicate.
	p2.hub.Publish(store.commit(tenantA, 1))
	s2.waitSeqs(t, "ben", 8)
	s3.waitSeqs(t, "cy", 8)
}

// cutProxy forwards TCP connections to a NATS server until cut, which
// drops them and refuses new ones: one process loses its connection
// while the others keep theirs.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A process loses its connection to NATS while the others keep theirs,
// with no reconnect buffer (as when the buffer overflows): its publishes
// fail. Its own sockets get the events at once; the other processes' get
// them from the store within the head-check bound, before it reconnects.
func TestFailedPublishReachesEveryProcess(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	proxy := newCutProxy(t, srv.Addr().String())
	p1 := startChecking(t, "p1", proxy.url(), store, nil, natsgo.ReconnectBufSize(-1))
	p2 := startChecking(t, "p2", srv.ClientURL(), store, nil)
	s1, s2 := newSink(), newSink()
	subscribe(t, p1, session(tenantA, "ana", "k1"), s1)
	subscribe(t, p2, session(tenantA, "ben", "k2"), s2)
	p1.hub.Publish(store.commit(tenantA, 2))
	s2.waitSeqs(t, "ben", 2)

	down := p1.broker.nc.StatusChanged(natsgo.RECONNECTING)
	proxy.cut()
	select {
	case <-down:
	case <-time.After(wait):
		t.Fatal("p1 did not notice its connection going")
	}
	p1.hub.Publish(store.commit(tenantA, 3))
	lost := time.Now()
	waitSeqsWithin(t, s1, "ana", 5, lost, time.Second)
	if st := p1.broker.Stats(); st.PublishErrors == 0 {
		t.Errorf("p1 stats %+v: the publish did not fail; the test proves nothing", st)
	}
	waitSeqsWithin(t, s2, "ben", 5, lost, lossBound)
	if p1.broker.Connected() {
		t.Fatal("p1 reconnected; the events may have come another way")
	}
	p2.hub.Publish(store.commit(tenantA, 1))
	s2.waitSeqs(t, "ben", 6)
}

// NATS stops while processes commit, and a process starts while it is
// down. Every process's own sockets get what it commits at once; once the
// server is back every socket everywhere has 1..N exactly once, in order,
// without any event committed after the outage.
func TestNATSOutageKeepsLocalDeliveryAndHeals(t *testing.T) {
	srv := startServer(t, 0)
	port := serverPort(srv)
	store := newLogStore()
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{})
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{})
	s1, s2 := newSink(), newSink()
	subscribe(t, p1, session(tenantA, "ana", "k1"), s1)
	subscribe(t, p2, session(tenantA, "ben", "k2"), s2)
	p1.hub.Publish(store.commit(tenantA, 2))
	s1.waitSeqs(t, "ana", 2)
	s2.waitSeqs(t, "ben", 2)

	down := p1.broker.nc.StatusChanged(natsgo.RECONNECTING)
	srv.Shutdown()
	srv.WaitForShutdown()
	select {
	case <-down:
	case <-time.After(wait):
		t.Fatal("p1 did not notice the server going away")
	}
	// Committed during the outage, on both processes: each one's own
	// socket has its events at once.
	p1.hub.Publish(store.commit(tenantA, 3))
	s1.waitSeqs(t, "ana", 5)
	p2.hub.Publish(store.commit(tenantA, 2))
	s2.waitFor(t, "ben to get seqs 6 and 7", func() bool {
		got := s2.seqs()
		return len(got) >= 4 && got[len(got)-1] == 7
	})

	// A process starts while the server is down.
	p3 := startProcess(t, "p3", fmt.Sprintf("nats://127.0.0.1:%d", port), store, hub.Options{})
	if p3.broker.Connected() {
		t.Fatal("p3 is connected to a server that is down")
	}
	s3 := newSink()
	sub3, err := p3.hub.Subscribe(tenantA, session(tenantA, "cy", "k3"), s3)
	if err != nil {
		t.Fatalf("subscribe with NATS down: %v", err)
	}
	t.Cleanup(sub3.Close)
	replayAndStart(t, store, tenantA, sub3, s3)
	p3.hub.Publish(store.commit(tenantA, 1))
	s3.waitSeqs(t, "cy", 8)

	startServer(t, port)
	for _, s := range []struct {
		name string
		sink *sink
	}{{"ana", s1}, {"ben", s2}, {"cy", s3}} {
		s.sink.waitSeqs(t, s.name, 8)
	}
	deadline := time.Now().Add(wait)
	for !p3.broker.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("p3 did not connect once the server was up")
		}
		time.Sleep(10 * time.Millisecond) // polling the connection state
	}
	// p3, which never had a connection before, now carries live events
	// both ways.
	p3.hub.Publish(store.commit(tenantA, 1))
	p1.hub.Publish(store.commit(tenantA, 1))
	for _, s := range []struct {
		name string
		sink *sink
	}{{"ana", s1}, {"ben", s2}, {"cy", s3}} {
		s.sink.waitSeqs(t, s.name, 10)
	}
}
