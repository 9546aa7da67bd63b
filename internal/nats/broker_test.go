package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

const wait = 10 * time.Second

// startServer runs nats-server in the test process on a loopback port
// (port 0: any free one).
func startServer(t *testing.T, port int) *server.Server {
	t.Helper()
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(wait) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

func serverPort(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }

// logStore is the shared store's event log, as every process sees it.
type logStore struct {
	mu     sync.Mutex
	events map[string][]inbox.Event
}

func newLogStore() *logStore { return &logStore{events: map[string][]inbox.Event{}} }

// commit appends n events to the tenant's log and returns them, as a
// store's commit would before handing them to its process's hub.
func (l *logStore) commit(tenant string, n int) []inbox.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []inbox.Event
	for range n {
		seq := uint64(len(l.events[tenant]) + 1)
		ev := inbox.Event{TenantID: tenant, Seq: seq, Type: "message.created", At: time.Unix(int64(seq), 0).UTC(),
			Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, seq))}
		l.events[tenant] = append(l.events[tenant], ev)
		out = append(out, ev)
	}
	return out
}

func (l *logStore) fill(_ context.Context, tenant string, since uint64) ([]inbox.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.events[tenant]
	if since >= uint64(len(evs)) {
		return nil, nil
	}
	end := min(uint64(len(evs)), since+50) // pages, as a store would
	return append([]inbox.Event(nil), evs[since:end]...), nil
}

// process is one OneBox process: its broker and its hub.
type process struct {
	name   string
	broker *Broker
	hub    *hub.Hub
}

func startProcess(t *testing.T, name, url string, store *logStore, hopts hub.Options, extra ...natsgo.Option) *process {
	t.Helper()
	extra = append([]natsgo.Option{natsgo.ReconnectWait(20 * time.Millisecond)}, extra...)
	b, err := Connect(Options{URL: url, Name: name, NATS: extra})
	if err != nil {
		t.Fatal(err)
	}
	hopts.Broker = b
	hopts.Node = name
	hopts.Fill = store.fill
	h := hub.New(hopts)
	t.Cleanup(func() {
		h.Close()
		b.Close()
	})
	return &process{name: name, broker: b, hub: h}
}

// sink is a socket as the hub sees it, recording what it is sent.
type sink struct {
	mu      sync.Mutex
	frames  []frame
	closes  []int
	closed  time.Time
	changed chan struct{}
}

type frame struct {
	Type  string `json:"type"`
	Event *struct {
		Seq uint64 `json:"seq"`
	} `json:"event"`
	AgentID        string `json:"agent_id"`
	ConversationID string `json:"conversation_id"`
	Online         bool   `json:"online"`
}

func newSink() *sink { return &sink{changed: make(chan struct{}, 1)} }

func (s *sink) Write(_ context.Context, frames [][]byte) error {
	s.mu.Lock()
	for _, b := range frames {
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("bad frame %s: %w", b, err)
		}
		s.frames = append(s.frames, f)
	}
	s.mu.Unlock()
	s.notify()
	return nil
}

func (s *sink) Close(code int, _ string) {
	s.mu.Lock()
	s.closes = append(s.closes, code)
	if s.closed.IsZero() {
		s.closed = time.Now()
	}
	s.mu.Unlock()
	s.notify()
}

func (s *sink) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *sink) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-timer.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// seqs lists the event seqs received, in order.
func (s *sink) seqs() []uint64 {
	var out []uint64
	for _, f := range s.frames {
		if f.Type == "event" {
			out = append(out, f.Event.Seq)
		}
	}
	return out
}

// waitSeqs waits for n events and checks they are exactly 1..n in order.
func (s *sink) waitSeqs(t *testing.T, name string, n int) {
	t.Helper()
	s.waitFor(t, fmt.Sprintf("%s to get %d events", name, n), func() bool { return len(s.seqs()) >= n || len(s.closes) > 0 })
	s.mu.Lock()
	if len(s.closes) > 0 && len(s.seqs()) < n {
		got, closes := len(s.seqs()), s.closes
		s.mu.Unlock()
		t.Fatalf("%s was closed (%v) after %d of %d events", name, closes, got, n)
	}
	got := s.seqs()
	s.mu.Unlock()
	if len(got) != n {
		t.Fatalf("%s got %d events, want %d", name, len(got), n)
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("%s: event %d has seq %d (got %v)", name, i, seq, got)
		}
	}
}

func (s *sink) presence(agent string) (online, seen bool) {
	for _, f := range s.frames {
		if f.Type == "presence" && f.AgentID == agent {
			online, seen = f.Online, true
		}
	}
	return online, seen
}

func session(tenant, agent, key string) inbox.Session {
	return inbox.Session{Hash: "h-" + agent + "-" + key, TenantID: tenant, AgentID: agent, KeyID: key}
}

func subscribe(t *testing.T, p *process, sess inbox.Session, s hub.Sink) *hub.Subscription {
	t.Helper()
	sub, err := p.hub.Subscribe(sess.TenantID, sess, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	sub.Start(0)
	return sub
}

const tenantA = "0193a5c2-7f1e-7cc0-9d52-3f1e0c9a4b11"
const tenantB = "0193a5c2-7f1e-7cc0-9d52-3f1e0c9a4b22"

// Three processes commit events of one tenant concurrently, each handing
// its commits to its own hub; every socket on every process gets 1..N
// exactly once, in order.
func TestEventsReachEveryProcessInOrderOnce(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	var procs []*process
	var sinks []*sink
	for i := range 3 {
		p := startProcess(t, fmt.Sprintf("p%d", i), srv.ClientURL(), store, hub.Options{})
		procs = append(procs, p)
		for j := range 2 {
			s := newSink()
			subscribe(t, p, session(tenantA, fmt.Sprintf("agent-%d-%d", i, j), "k"), s)
			sinks = append(sinks, s)
		}
	}
	// A process holding no socket of tenant B is not subscribed to it.
	other := newSink()
	subscribe(t, procs[0], session(tenantB, "b-agent", "k"), other)
	for i, p := range procs {
		want := 1
		if i == 0 {
			want = 2
		}
		if got := p.broker.Stats().Tenants; got != want {
			t.Fatalf("process %d subscribed to %d tenants, want %d", i, got, want)
		}
	}

	const perProcess = 200
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perProcess; {
				n := 1 + i%3
				p.hub.Publish(store.commit(tenantA, n))
				i += n
			}
		}()
	}
	wg.Wait()
	total := len(store.events[tenantA])
	for i, s := range sinks {
		s.waitSeqs(t, fmt.Sprintf("socket %d", i), total)
	}
	other.mu.Lock()
	if n := len(other.seqs()); n != 0 {
		t.Errorf("a socket of another tenant got %d events", n)
	}
	other.mu.Unlock()
}

// Typing, presence and revocation cross processes; revocation closes the
// matching sockets everywhere within a second. The broker leaves a
// tenant's subject when its last socket goes.
func TestSignalsCrossProcesses(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{})
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{})
	p3 := startProcess(t, "p3", srv.ClientURL(), store, hub.Options{})

	ana, ben, cy := newSink(), newSink(), newSink()
	anaSub := subscribe(t, p1, session(tenantA, "ana", "k-ana"), ana)
	subscribe(t, p3, session(tenantA, "cy", "k-cy"), cy)
	benSub := subscribe(t, p2, session(tenantA, "ben", "k-ben"), ben)

	// Ana sees Ben come online (he connected on another process).
	ana.waitFor(t, "ben online at ana", func() bool { on, _ := ana.presence("ben"); return on })
	if got := p1.hub.Online(tenantA); !contains(got, "ben") || !contains(got, "ana") {
		t.Errorf("p1 online = %v, want ana and ben", got)
	}

	anaSub.Typing("conv-1")
	for name, s := range map[string]*sink{"ben": ben, "cy": cy} {
		s.waitFor(t, "typing at "+name, func() bool {
			for _, f := range s.frames {
				if f.Type == "typing" && f.AgentID == "ana" && f.ConversationID == "conv-1" {
					return true
				}
			}
			return false
		})
	}

	// Revoking Ben's key on p3 closes his socket on p2 within a second.
	start := time.Now()
	p3.hub.Disconnect(tenantA, inbox.Match{KeyID: "k-ben"})
	ben.waitFor(t, "ben's socket closed", func() bool { return len(ben.closes) > 0 })
	ben.mu.Lock()
	code, took := ben.closes[0], ben.closed.Sub(start)
	ben.mu.Unlock()
	if code != hub.CloseRevoked {
		t.Errorf("close code %d, want %d", code, hub.CloseRevoked)
	}
	if took > time.Second {
		t.Errorf("revocation took %s to reach another process, want under 1s", took)
	}
	t.Logf("revocation reached the other process in %s", took)
	benSub.Close()
	ana.waitFor(t, "ben offline at ana", func() bool { on, _ := ana.presence("ben"); return !on })
	for _, s := range []*sink{ana, cy} {
		s.mu.Lock()
		if len(s.closes) != 0 {
			t.Errorf("a socket not matching the revocation was closed: %v", s.closes)
		}
		s.mu.Unlock()
	}
	// p2 holds no socket of the tenant any more: it has left its subject.
	if n := p2.broker.Stats().Tenants; n != 0 {
		t.Errorf("p2 still subscribed to %d tenants", n)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// The NATS server restarts while a process commits events; with its
// reconnect buffer off they are lost on the wire, and nothing is
// committed after them. The other process still delivers them, from the
// store, once reconnected: a lost trailing event is filled too.
func TestRestartGapIsFilledFromTheStore(t *testing.T) {
	srv := startServer(t, 0)
	port := serverPort(srv)
	store := newLogStore()
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{}, natsgo.ReconnectBufSize(-1))
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{})
	s1, s2 := newSink(), newSink()
	subscribe(t, p1, session(tenantA, "ana", "k1"), s1)
	subscribe(t, p2, session(tenantA, "ben", "k2"), s2)

	p1.hub.Publish(store.commit(tenantA, 5))
	s2.waitSeqs(t, "ben", 5)

	reconnected := make(chan struct{}, 2)
	for _, p := range []*process{p1, p2} {
		p.broker.nc.SetReconnectHandler(func(*natsgo.Conn) {
			go p.broker.resyncAll()
			reconnected <- struct{}{}
		})
	}
	down := p1.broker.nc.StatusChanged(natsgo.RECONNECTING)
	srv.Shutdown()
	srv.WaitForShutdown()
	select {
	case <-down:
	case <-time.After(wait):
		t.Fatal("p1 did not notice the server going away")
	}
	p1.hub.Publish(store.commit(tenantA, 3)) // lost: no connection, no buffer
	before := p2.hub.Stats().CatchUps

	startServer(t, port)
	for range 2 {
		select {
		case <-reconnected:
		case <-time.After(wait):
			t.Fatal("processes did not reconnect")
		}
	}
	s2.waitSeqs(t, "ben", 8)
	s1.waitSeqs(t, "ana", 8)
	if p2.hub.Stats().CatchUps == before {
		t.Error("no catch-up was counted")
	}
	// Live delivery carries on after the catch-up, without duplicates.
	p2.hub.Publish(store.commit(tenantA, 2))
	s1.waitSeqs(t, "ana", 10)
	s2.waitSeqs(t, "ben", 10)
}

// A process that dies says nothing; with heartbeats the others forget its
// agents after PresenceExpiry.
func TestPresenceConvergesWhenAProcessDies(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	opts := hub.Options{Heartbeat: 40 * time.Millisecond}
	p1 := startProcess(t, "p1", srv.ClientURL(), store, opts)
	p2 := startProcess(t, "p2", srv.ClientURL(), store, opts)
	ana, ben := newSink(), newSink()
	subscribe(t, p1, session(tenantA, "ana", "k1"), ana)
	subscribe(t, p2, session(tenantA, "ben", "k2"), ben)
	ana.waitFor(t, "ben online", func() bool { on, _ := ana.presence("ben"); return on })
	// A process that joins later learns who is online at once (it asks).
	p3 := startProcess(t, "p3", srv.ClientURL(), store, opts)
	cy := newSink()
	subscribe(t, p3, session(tenantA, "cy", "k3"), cy)
	cy.waitFor(t, "p3 learns ana and ben are online", func() bool {
		a, _ := cy.presence("ana")
		b, _ := cy.presence("ben")
		return a && b
	})

	// p2 dies: its connection drops, its hub never says goodbye.
	died := time.Now()
	p2.broker.nc.Close()
	ana.waitFor(t, "ben offline after p2 died", func() bool { on, seen := ana.presence("ben"); return seen && !on })
	took := time.Since(died)
	if max := opts.Heartbeat*3 + opts.Heartbeat*3; took > max+time.Second {
		t.Errorf("presence converged after %s, want about %s", took, max)
	}
	t.Logf("a dead process's agent went offline elsewhere after %s (heartbeat %s)", took, opts.Heartbeat)
	if got := p1.hub.Online(tenantA); contains(got, "ben") {
		t.Errorf("p1 still has ben online: %v", got)
	}
	cy.waitFor(t, "ben offline at p3", func() bool { on, _ := cy.presence("ben"); return !on })
}

func TestTenantIDCannotInjectSubjectTokens(t *testing.T) {
	srv := startServer(t, 0)
	b, err := Connect(Options{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, id := range []string{"", "a.b", "*", ">", "a b", "a\tb", "tenant.>", "x\r\nPUB y 1", string(make([]byte, 200))} {
		if err := b.Publish(id, hub.Message{Kind: hub.KindTyping}); err == nil {
			t.Errorf("publish to tenant %q accepted", id)
		}
		if _, err := b.Subscribe(id, func(hub.Message) {}); err == nil {
			t.Errorf("subscribe to tenant %q accepted", id)
		}
	}
	if b.Stats().Tenants != 0 {
		t.Error("a refused subscription was kept")
	}
	for _, p := range []string{"a..b", "a.*", ">", "a b", "."} {
		if _, err := Connect(Options{URL: srv.ClientURL(), Prefix: p}); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	if err := b.Publish(tenantA, hub.Message{Kind: hub.KindResync}); err == nil {
		t.Error("publishing a catch-up from the hub accepted")
	}
}

// An event larger than the server's payload limit cannot travel; the
// receivers are told to catch up and read it from the store.
func TestOversizedEventIsReadFromTheStore(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, MaxPayload: 4096})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(wait) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	store := newLogStore()
	p1 := startProcess(t, "p1", s.ClientURL(), store, hub.Options{})
	p2 := startProcess(t, "p2", s.ClientURL(), store, hub.Options{})
	ben := newSink()
	subscribe(t, p2, session(tenantA, "ben", "k"), ben)

	evs := store.commit(tenantA, 40)
	store.mu.Lock()
	// Valid JSON, as every event in a store is: an invalid one would be
	// refused by the hub's encoder before it ever reached the broker.
	big := fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", 5000))
	store.events[tenantA][39].Data = json.RawMessage(big) // the last one is too big
	evs[39].Data = json.RawMessage(big)
	store.mu.Unlock()
	p1.hub.Publish(evs)
	ben.waitSeqs(t, "ben", 40)
}
