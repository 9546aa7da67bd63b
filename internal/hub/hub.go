// Package hub fans a tenant's committed events and ephemeral signals out to
// its live sockets. It knows nothing about WebSockets: a socket is a Sink.
//
// Memory per idle socket is the design constraint (<= 16 KiB at 10k sockets),
// so a subscription owns no goroutine. Publishing appends shared, pre-encoded
// frames to bounded per-subscription queues and schedules the subscription
// once onto a small worker pool, which writes everything queued so far.
package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Close codes the hub asks sinks to use; they are the contract's codes.
const (
	CloseRevoked  = 4401 // the session's credentials were withdrawn
	CloseSlow     = 4008 // the socket fell behind; the client resumes with since
	CloseInternal = 1011 // a gap could not be filled from the store
)

// FillFunc loads events with seq > since for a tenant, oldest first. The hub
// calls it when a subscription sees a seq jump (possible once events travel
// through a networked broker), so the socket never skips an event.
type FillFunc func(ctx context.Context, tenantID string, since uint64) ([]inbox.Event, error)

// Options configure a Hub. Zero values pick the defaults noted.
type Options struct {
	Broker    Broker   // default: NewLocalBroker()
	Fill      FillFunc // nil: an unfillable gap closes the socket with CloseInternal
	QueueSize int      // frames a subscription may have waiting; default 512
	Workers   int      // writer goroutines; default 2*GOMAXPROCS
	// WriteTimeout bounds writing one batch to one socket. A socket stuck
	// that long holds a pool worker, so it is short; default 5s.
	WriteTimeout time.Duration
	Node         string       // this process in presence messages; default random
	Logger       *slog.Logger // default: discard
	// Heartbeat, when set, makes the hub announce every Heartbeat which
	// agents it holds sockets of in each tenant, and forget another
	// process's agents when it has not heard from that process for
	// PresenceExpiry (default 3*Heartbeat): a process that dies must not
	// leave its agents online elsewhere for ever. One process needs none.
	Heartbeat      time.Duration
	PresenceExpiry time.Duration
	// Verify, when set, re-checks the sessions of a tenant's sockets after
	// the broker reports a possible loss (KindResync): a revocation is a
	// live message, not an event, so one missed while cut off is only
	// found in the store. Sockets whose session no longer holds close
	// with CloseRevoked. One process needs none: its broker loses nothing.
	Verify VerifyFunc
	// VerifyEvery, with Verify, also re-checks every tenant's sockets
	// that often, for a loss the broker did not notice. 0: only after a
	// reported loss.
	VerifyEvery time.Duration
	// Heads and CatchUpEvery, both set, make the hub ask the store every
	// CatchUpEvery for the heads of the tenants that heard no event in
	// that time, and catch up from the store (Fill) the sockets behind
	// it (heads.go): an event whose publish was lost, with nothing
	// committed after it, then still reaches them. One process needs
	// none: its broker loses nothing.
	Heads        HeadsFunc
	CatchUpEvery time.Duration
	// OnlineCache is how long Online reuses the answer the other
	// processes gave about a tenant this process holds no sockets of
	// (with a broker that can ask, see OnlineAsker); default 1s.
	OnlineCache time.Duration
}

// Stats are counters for metrics.
type Stats struct {
	Subscribers int64  // live subscriptions in this process
	SlowCloses  uint64 // subscriptions closed because their queue overflowed
	GapFills    uint64 // seq jumps filled from the store
	WriteErrors uint64 // batches a sink failed to write
	CatchUps    uint64 // subscriptions caught up from the store after a possible loss
	Reverified  uint64 // sockets closed because a re-check found their session withdrawn
	Behind      uint64 // subscriptions found behind the store's head and caught up
}

// Hub is the live fan-out of this process. It implements inbox.Publisher and
// inbox.Live.
type Hub struct {
	opts   Options
	log    *slog.Logger
	broker Broker

	// pmu serialises subscription changes so the presence messages they
	// publish leave in the order the per-agent counts changed.
	pmu     sync.Mutex
	mu      sync.Mutex // guards tenants and closed
	tenants map[string]*tenant
	closed  bool

	runq    runQueue
	workers sync.WaitGroup
	stop    chan struct{} // closed by Close: ends the heartbeat loop

	// ctx ends at Close; it bounds store checks and questions to other
	// processes. background counts the goroutines running them.
	ctx        context.Context
	cancel     context.CancelFunc
	background sync.WaitGroup
	bgmu       sync.Mutex // guards bgClosed
	bgClosed   bool
	// verifySlots holds a token per session check running.
	verifySlots chan struct{}

	asker       OnlineAsker // nil unless the broker can ask other processes
	stopAnswers func()
	amu         sync.Mutex
	asked       map[string]*onlineAnswer // tenant id -> last answer from other processes

	subscribers atomic.Int64
	slowCloses  atomic.Uint64
	gapFills    atomic.Uint64
	writeErrors atomic.Uint64
	catchUps    atomic.Uint64
	reverified  atomic.Uint64
	behind      atomic.Uint64
}

var (
	_ inbox.Publisher = (*Hub)(nil)
	_ inbox.Live      = (*Hub)(nil)
)

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("hub: closed")

// tenant is this process's view of one tenant: its local subscriptions and
// who is online anywhere (as announced through the broker).
type tenant struct {
	id     string
	cancel func() // broker subscription

	mu     sync.RWMutex
	subs   map[*Subscription]struct{}
	local  map[string]int                 // agent id -> sockets in this process
	online map[string]map[string]struct{} // agent id -> nodes holding a socket
	seen   map[string]time.Time           // other node -> when it last spoke (with Heartbeat on)
	// heard is set by every event delivered and cleared by each round
	// of head checks: only a tenant that stayed quiet is asked about.
	heard atomic.Bool

	vmu         sync.Mutex
	verifying   bool // a check of the sessions runs
	verifyAgain bool // and must run once more when done
}

// New starts a hub and its worker pool; Close stops them.
func New(opts Options) *Hub {
	if opts.Broker == nil {
		opts.Broker = NewLocalBroker()
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 512
	}
	if opts.Workers <= 0 {
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	if opts.Node == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.Node = hex.EncodeToString(b[:])
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Heartbeat > 0 && opts.PresenceExpiry <= 0 {
		opts.PresenceExpiry = 3 * opts.Heartbeat
	}
	if opts.OnlineCache <= 0 {
		opts.OnlineCache = time.Second
	}
	h := &Hub{
		opts:    opts,
		log:     opts.Logger,
		broker:  opts.Broker,
		tenants: make(map[string]*tenant),
		stop:    make(chan struct{}),
		asked:   make(map[string]*onlineAnswer),

		verifySlots: make(chan struct{}, verifyConcurrency),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if asker, ok := opts.Broker.(OnlineAsker); ok {
		stop, err := asker.AnswerOnline(h.localAgents)
		if err != nil {
			// Other processes then see this one's agents only through
			// the tenant's own messages, as before.
			h.log.Error("hub: cannot answer other processes' questions about who is online", "err", err)
		} else {
			h.asker, h.stopAnswers = asker, stop
		}
	}
	h.runq.cond.L = &h.runq.mu
	h.workers.Add(opts.Workers)
	for range opts.Workers {
		go h.worker()
	}
	if opts.Heartbeat > 0 {
		h.workers.Add(1)
		go h.heartbeats()
	}
	if opts.Verify != nil && opts.VerifyEvery > 0 {
		h.workers.Add(1)
		go h.verifyPeriodically()
	}
	if opts.Heads != nil && opts.CatchUpEvery > 0 && opts.Fill != nil {
		h.workers.Add(1)
		go h.checkHeadsPeriodically()
	}
	return h
}

// Close stops the worker pool. Sockets are closed by their owner (package
// ws), which should be shut down first.
func (h *Hub) Close() {
	h.mu.Lock()
	already := h.closed
	h.closed = true
	h.mu.Unlock()
	if !already {
		if h.stopAnswers != nil {
			h.stopAnswers()
		}
		h.cancel()
		close(h.stop)
		h.runq.close()
	}
	h.workers.Wait()
	h.bgmu.Lock()
	h.bgClosed = true
	h.bgmu.Unlock()
	h.background.Wait()
}

// Stats returns the current counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Subscribers: h.subscribers.Load(),
		SlowCloses:  h.slowCloses.Load(),
		GapFills:    h.gapFills.Load(),
		WriteErrors: h.writeErrors.Load(),
		CatchUps:    h.catchUps.Load(),
		Reverified:  h.reverified.Load(),
		Behind:      h.behind.Load(),
	}
}

// Publish encodes each event once and hands the frames to the broker, one
// message per run of same-tenant events. It never blocks on sockets. When
// the broker fails outright, this process's sockets of the tenant are
// caught up from the store: the events are committed and they must not
// miss them. Other processes find them by their own head checks
// (Options.Heads).
func (h *Hub) Publish(events []inbox.Event) {
	for i := 0; i < len(events); {
		j := i + 1
		for j < len(events) && events[j].TenantID == events[i].TenantID {
			j++
		}
		frames := make([]Frame, 0, j-i)
		for _, ev := range events[i:j] {
			data, err := EncodeEvent(ev)
			if err != nil {
				// Subscribers will see a gap and fill it (or close) rather
				// than silently skip the event.
				h.log.Error("hub: dropping unencodable event", "err", err)
				continue
			}
			frames = append(frames, Frame{Seq: ev.Seq, Data: data})
		}
		tenantID := events[i].TenantID
		i = j
		if len(frames) == 0 {
			continue
		}
		switch err := h.broker.Publish(tenantID, Message{Kind: KindEvents, Events: frames}); {
		case err == nil:
		case errors.Is(err, ErrLocalOnly):
			h.log.Warn("hub: events reached this process's sockets only", "tenant", tenantID, "err", err)
		default:
			h.log.Error("hub: publish events; catching this process's sockets up from the store", "tenant", tenantID, "err", err)
			h.catchUpLocal(tenantID)
		}
	}
}

// Typing relays "agentID is typing in conversationID" to the tenant's other
// agents, in every process.
func (h *Hub) Typing(tenantID, conversationID, agentID string) {
	m := Message{Kind: KindTyping, Frame: encodeTyping(conversationID, agentID), AgentID: agentID}
	if err := h.broker.Publish(tenantID, m); err != nil {
		h.log.Error("hub: publish typing", "tenant", tenantID, "err", err)
	}
}

// Disconnect closes, with 4401, the tenant's sockets whose session matches,
// in every process. It goes through the broker so a revocation handled by
// one process reaches sockets held by another.
func (h *Hub) Disconnect(tenantID string, match inbox.Match) {
	if match == (inbox.Match{}) {
		return
	}
	if err := h.broker.Publish(tenantID, Message{Kind: KindDisconnect, Match: match}); err != nil {
		h.log.Error("hub: publish disconnect", "tenant", tenantID, "err", err)
	}
}

// Online lists, sorted, the tenant's agents holding at least one socket,
// in any process. For a tenant this process holds sockets of, it knows from
// the tenant's presence messages; for another, it asks the processes that
// do, if the broker can (see OnlineAsker), which takes up to the broker's
// answer window once per OnlineCache. With the in-process broker it is
// this process's sockets alone.
func (h *Hub) Online(tenantID string) []string {
	h.mu.Lock()
	t := h.tenants[tenantID]
	h.mu.Unlock()
	if t == nil {
		if h.asker == nil {
			return nil
		}
		return h.askOnline(tenantID)
	}
	// This process's own agents come from its sockets, not from its
	// presence messages coming back through the broker: a networked
	// broker may hand those back after other processes' news.
	t.mu.RLock()
	ids := make([]string, 0, len(t.online)+len(t.local))
	for id := range t.local {
		ids = append(ids, id)
	}
	for id, nodes := range t.online {
		if _, mine := t.local[id]; mine {
			continue
		}
		for node := range nodes {
			if node != h.opts.Node {
				ids = append(ids, id)
				break
			}
		}
	}
	t.mu.RUnlock()
	sort.Strings(ids)
	return ids
}

// Subscribe registers sink for the tenant's live stream. The subscription
// starts paused: frames queue (bounded) but nothing is written until Start,
// which lets the caller replay the log first without a gap or a duplicate.
func (h *Hub) Subscribe(tenantID string, sess inbox.Session, sink Sink) (*Subscription, error) {
	h.pmu.Lock()
	defer h.pmu.Unlock()

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	t := h.tenants[tenantID]
	fresh := t == nil
	if t == nil {
		t = &tenant{
			id:     tenantID,
			subs:   make(map[*Subscription]struct{}),
			local:  make(map[string]int),
			online: make(map[string]map[string]struct{}),
			seen:   make(map[string]time.Time),
		}
	}
	// The subscription joins its tenant before a fresh tenant subscribes
	// on the broker, so the catch-up a networked broker asks for once the
	// server knows of the subscription reaches it: it waits, paused, until
	// Start.
	s := &Subscription{hub: h, t: t, session: sess, sink: sink}
	t.mu.Lock()
	t.subs[s] = struct{}{}
	t.local[sess.AgentID]++
	first := t.local[sess.AgentID] == 1
	t.mu.Unlock()
	if fresh {
		// A networked broker returns once the server knows of the
		// subscription, a round trip: not under h.mu, which Online and
		// other tenants need meanwhile. pmu keeps every other change of
		// h.tenants out until t is in.
		h.mu.Unlock()
		cancel, err := h.broker.Subscribe(tenantID, func(m Message) { h.deliver(t, m) })
		if err != nil {
			return nil, fmt.Errorf("hub: subscribe tenant %s: %w", tenantID, err)
		}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			cancel()
			return nil, ErrClosed
		}
		t.cancel = cancel
		h.tenants[tenantID] = t
	}
	h.mu.Unlock()
	h.subscribers.Add(1)

	if first {
		h.publishPresence(tenantID, sess.AgentID, true)
	}
	if fresh && h.opts.Heartbeat > 0 {
		// Learn at once who is online on the other processes.
		h.publishHeartbeatLocked(t, true)
	}
	return s, nil
}

// remove takes s out of its tenant. Callers hold no hub, tenant or
// subscription lock (it is called from workers and Subscription.Close).
func (h *Hub) remove(s *Subscription) {
	h.pmu.Lock()
	defer h.pmu.Unlock()

	t := s.t
	agent := s.session.AgentID
	h.mu.Lock()
	t.mu.Lock()
	if _, ok := t.subs[s]; !ok {
		t.mu.Unlock()
		h.mu.Unlock()
		return
	}
	delete(t.subs, s)
	t.local[agent]--
	last := t.local[agent] <= 0
	if last {
		delete(t.local, agent)
	}
	empty := len(t.subs) == 0
	t.mu.Unlock()
	var cancel func()
	if empty && h.tenants[t.id] == t {
		delete(h.tenants, t.id)
		cancel = t.cancel
	}
	h.mu.Unlock()
	h.subscribers.Add(-1)

	if cancel != nil {
		cancel()
	}
	if last {
		h.publishPresence(t.id, agent, false)
	}
}

func (h *Hub) publishPresence(tenantID, agentID string, online bool) {
	m := Message{Kind: KindPresence, AgentID: agentID, Node: h.opts.Node, Online: online,
		Frame: encodePresence(agentID, online)}
	if err := h.broker.Publish(tenantID, m); err != nil {
		h.log.Error("hub: publish presence", "tenant", tenantID, "err", err)
	}
}

// deliver is the broker's callback for one tenant. It only queues and
// schedules; writing happens on the worker pool.
func (h *Hub) deliver(t *tenant, m Message) {
	switch m.Kind {
	case KindEvents:
		if len(m.Events) == 0 {
			return
		}
		t.heard.Store(true)
		t.mu.RLock()
		for s := range t.subs {
			s.enqueue(item{events: m.Events})
		}
		t.mu.RUnlock()
	case KindTyping:
		t.mu.RLock()
		for s := range t.subs {
			if s.session.AgentID != m.AgentID {
				s.enqueue(item{frame: m.Frame})
			}
		}
		t.mu.RUnlock()
	case KindPresence:
		t.mu.Lock()
		if h.opts.Heartbeat > 0 && m.Node != h.opts.Node {
			t.seen[m.Node] = time.Now()
		}
		nodes := t.online[m.AgentID]
		was := len(nodes) > 0
		if m.Online {
			if nodes == nil {
				nodes = make(map[string]struct{}, 1)
				t.online[m.AgentID] = nodes
			}
			nodes[m.Node] = struct{}{}
		} else {
			delete(nodes, m.Node)
			if len(nodes) == 0 {
				delete(t.online, m.AgentID)
			}
		}
		if was != m.Online {
			for s := range t.subs {
				s.enqueue(item{frame: m.Frame})
			}
		}
		t.mu.Unlock()
	case KindDisconnect:
		t.mu.RLock()
		for s := range t.subs {
			if m.Match.Matches(s.session) {
				s.kill(CloseRevoked, "credentials revoked")
			}
		}
		t.mu.RUnlock()
	case KindResync:
		if h.opts.Fill != nil {
			t.mu.RLock()
			for s := range t.subs {
				s.enqueue(item{resync: true})
			}
			t.mu.RUnlock()
		}
		// Presence messages may have been lost too (or, for a fresh
		// subscription, sent before the other processes could reach
		// us): announce our agents and ask the others for theirs, with
		// or without periodic heartbeats. Only a networked broker sends
		// KindResync, so one process never does this. Not from here:
		// publishing presence takes locks a broker callback may not.
		go h.publishHeartbeat(t, true)
		// A revocation may have been lost as well: ask the store.
		h.verifyLater(t)
	case KindHeartbeat:
		h.heartbeatIn(t, m)
	}
}
