// Package nats carries the hub's messages between server processes over
// NATS (core publish/subscribe, no JetStream). Each process subscribes to
// the tenants it holds sockets of, one subject per tenant.
//
// A process hands its own messages to its own subscribers directly and
// sends them through NATS only for the other processes (the connection
// does not echo them back): with NATS down, the sockets of the process
// that committed an event still get it, and only delivery across
// processes waits for NATS to come back.
//
// Core NATS delivers at most once: a process that is disconnected, or too
// slow to read, misses messages. The event log in the store is the source
// of truth, so the broker never tries to redeliver; it tells the hub
// (hub.KindResync) that a tenant's stream may have holes, and the hub
// catches its sockets up from the store. A loss nobody notices (the
// publishing process killed between its commit and its publish) is found
// by the hub's periodic comparison with the store's head
// (hub.Options.Head).
//
// Revocations (hub.KindDisconnect) and presence are not in the log. A
// revocation published while a process is cut off from NATS does not
// reach that process's sockets, so the hub re-checks its sockets'
// sessions in the store after every catch-up; presence recovers because
// the hub asks who is online after every catch-up. A process holding no
// sockets of a tenant asks the others who is online in it (online.go).
package nats

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/onebox/onebox/internal/hub"
)

// Options configure a Broker.
type Options struct {
	// URL is the NATS server (or a comma list of cluster members).
	URL string
	// Prefix starts every subject, so several OneBox installations can
	// share a NATS server; dot-separated tokens of letters, digits, '-'
	// and '_'. Default "onebox".
	Prefix string
	// Name labels the connection in the NATS server's monitoring.
	Name   string
	Logger *slog.Logger
	// ConfirmTimeout bounds the round trip that confirms a new
	// subscription reached the server (default 5s).
	ConfirmTimeout time.Duration
	// OnlineWindow is how long a process holding no sockets of a tenant
	// waits for the others' answers to "who is online" (default 100ms).
	// It bounds the agents list's latency on such a process; answers
	// later than it are not counted.
	OnlineWindow time.Duration
	// ReconnectWait is the pause between attempts to reach the server,
	// including before the first connection: a process starts while NATS
	// is down and connects once it is up (default 1s).
	ReconnectWait time.Duration
	// NATS are extra connection options (tests shorten reconnect waits).
	NATS []natsgo.Option
}

// Broker is a hub.Broker on a NATS connection.
type Broker struct {
	nc *natsgo.Conn
	// ready is closed once nc and startedConnected are set: nats.go may
	// run the connection's callbacks before Connect returns it.
	ready chan struct{}
	// startedConnected says the first attempt connected, so no
	// subscription was made without a server to confirm it.
	startedConnected bool
	prefix           string
	log              *slog.Logger
	confirm          time.Duration

	onlineWindow time.Duration

	mu      sync.Mutex
	tenants map[string]*tenantSub
	closed  bool
	// unsent are the tenants a publish to NATS failed for since the last
	// connection; once connected again the broker tells their other
	// processes to catch up, rather than leave it to their head checks.
	unsent map[string]struct{}

	resyncs    atomic.Uint64
	publishErr atomic.Uint64
}

var _ hub.Broker = (*Broker)(nil)

// tenantSub is the one NATS subscription of a tenant in this process and
// the hub callbacks it feeds.
type tenantSub struct {
	id  string
	sub *natsgo.Subscription
	// fns is replaced, never modified, so the NATS callback reads it
	// without a lock.
	fns atomic.Pointer[[]*subscriber]
}

type subscriber struct {
	fn   func(hub.Message)
	dead atomic.Bool
}

// Connect dials NATS. It does not fail when the server cannot be reached:
// it keeps trying every ReconnectWait, for ever, before the first
// connection as after a lost one, and meanwhile delivers to this process's
// own subscribers only. After each (re)connection every subscribed tenant
// is caught up from the store.
func Connect(opts Options) (*Broker, error) {
	if opts.URL == "" {
		return nil, errors.New("nats: a server URL is required")
	}
	if opts.Prefix == "" {
		opts.Prefix = "onebox"
	}
	if !validSubjectPrefix(opts.Prefix) {
		return nil, fmt.Errorf("nats: subject prefix %q: want dot-separated tokens of letters, digits, '-' and '_'", opts.Prefix)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ConfirmTimeout <= 0 {
		opts.ConfirmTimeout = 5 * time.Second
	}
	if opts.OnlineWindow <= 0 {
		opts.OnlineWindow = 100 * time.Millisecond
	}
	if opts.ReconnectWait <= 0 {
		opts.ReconnectWait = time.Second
	}
	b := &Broker{prefix: opts.Prefix, log: opts.Logger, confirm: opts.ConfirmTimeout, onlineWindow: opts.OnlineWindow,
		tenants: make(map[string]*tenantSub), unsent: make(map[string]struct{}), ready: make(chan struct{})}
	nopts := []natsgo.Option{
		natsgo.Name(opts.Name),
		natsgo.MaxReconnects(-1),
		natsgo.RetryOnFailedConnect(true),
		natsgo.ReconnectWait(opts.ReconnectWait),
		// This process's own messages reach its subscribers directly.
		natsgo.NoEcho(),
		natsgo.ConnectHandler(func(nc *natsgo.Conn) {
			b.log.Info("nats: connected", "server", nc.ConnectedUrlRedacted())
			go func() {
				<-b.ready
				if !b.startedConnected {
					// Subscriptions made before this first connection
					// had no confirmation: catch them up.
					b.resyncAll()
				}
			}()
		}),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			b.log.Warn("nats: disconnected; live events from other processes pause until reconnected", "err", err)
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) {
			b.log.Info("nats: reconnected; catching live streams up from the store", "server", nc.ConnectedUrlRedacted())
			go b.resyncAll()
		}),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			if sub != nil && errors.Is(err, natsgo.ErrSlowConsumer) {
				b.log.Warn("nats: dropped messages for a slow subscription; catching it up from the store", "subject", sub.Subject)
				go b.resyncSlow(sub)
				return
			}
			b.log.Warn("nats: asynchronous error", "err", err)
		}),
	}
	nopts = append(nopts, opts.NATS...)
	nc, err := natsgo.Connect(opts.URL, nopts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect: %w", err)
	}
	b.nc = nc
	b.startedConnected = nc.IsConnected()
	close(b.ready)
	if !b.startedConnected {
		b.log.Warn("nats: server unreachable; live events stay within this process until it connects", "url", opts.URL)
	}
	return b, nil
}

// Connected says whether the connection to NATS is up. Without it, live
// events reach this process's own sockets only; the store still answers
// every request, so it is not a reason to take the process out of service.
func (b *Broker) Connected() bool { return b.nc.IsConnected() }

// Close ends the connection after sending what is buffered.
func (b *Broker) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	if b.nc.IsConnected() {
		// Without a connection there is nothing to wait for: what is
		// buffered for a reconnect is lost with the process anyway.
		_ = b.nc.FlushTimeout(b.confirm)
	}
	b.nc.Close()
}

// Stats are counters for metrics and tests.
type Stats struct {
	Tenants       int    // tenants this process is subscribed to
	Resyncs       uint64 // catch-ups asked of the hub after a possible loss
	PublishErrors uint64 // messages NATS did not take (they reached this process only)
}

// Stats returns the current counters.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	n := len(b.tenants)
	b.mu.Unlock()
	return Stats{Tenants: n, Resyncs: b.resyncs.Load(), PublishErrors: b.publishErr.Load()}
}

// subject is the tenant's subject. Tenant ids are checked to be a single
// token, so one tenant can never name another's subject or a wildcard.
func (b *Broker) subject(tenantID string) (string, error) {
	if !validToken(tenantID) {
		return "", fmt.Errorf("nats: tenant id %q is not a valid subject token", tenantID)
	}
	return b.prefix + ".tenant." + tenantID, nil
}

// validToken accepts 1-128 letters, digits, '-' and '_': never '.', '*',
// '>' or whitespace, which NATS gives meaning to.
func validToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validSubjectPrefix(p string) bool {
	for _, tok := range strings.Split(p, ".") {
		if !validToken(tok) {
			return false
		}
	}
	return true
}

// Publish hands m to this process's subscribers of the tenant, then sends
// it to the other processes subscribed to it. It never waits for
// receivers: nats.go buffers the message (also while reconnecting, up to
// its reconnect buffer). Messages of one Broker reach each receiver in
// publish order.
//
// When NATS does not take the message, the error wraps hub.ErrLocalOnly:
// this process's subscribers have it, the others may not. Once connected
// again the broker tells the tenant's other processes to catch up.
func (b *Broker) Publish(tenantID string, m hub.Message) error {
	subj, err := b.subject(tenantID)
	if err != nil {
		return err
	}
	if m.Kind == hub.KindResync {
		return errors.New("nats: a catch-up is not published by the hub")
	}
	b.deliverLocal(tenantID, m)
	if m.Kind == hub.KindEvents {
		err = b.publishEvents(subj, m.Events)
	} else {
		var data []byte
		if data, err = encode(nil, m); err == nil {
			err = b.nc.Publish(subj, data)
		}
	}
	if err != nil {
		b.publishErr.Add(1)
		b.mu.Lock()
		b.unsent[tenantID] = struct{}{}
		b.mu.Unlock()
		return fmt.Errorf("nats: publish to tenant %s: %w: %w", tenantID, hub.ErrLocalOnly, err)
	}
	return nil
}

// deliverLocal hands m to this process's subscribers of the tenant, as
// NATS would have if it echoed the process's own messages, but at once and
// whether or not NATS is reachable. No lock is held while calling them.
func (b *Broker) deliverLocal(tenantID string, m hub.Message) {
	b.mu.Lock()
	ts := b.tenants[tenantID]
	b.mu.Unlock()
	if ts == nil {
		return
	}
	for _, s := range *ts.fns.Load() {
		if !s.dead.Load() {
			s.fn(m)
		}
	}
}

// publishEvents sends events in as few messages as the server's payload
// limit allows. An event too large for any message is left out and
// receivers are told to catch up from the store instead.
func (b *Broker) publishEvents(subj string, events []hub.Frame) error {
	limit := int(b.nc.MaxPayload())
	if limit <= 0 {
		limit = 1 << 20
	}
	const overhead = 2 + 10  // version, kind, count
	const perFrame = 10 + 10 // seq, length
	buf := make([]byte, 0, 256)
	flush := func(run []hub.Frame) error {
		if len(run) == 0 {
			return nil
		}
		data, err := encode(buf[:0], hub.Message{Kind: hub.KindEvents, Events: run})
		if err != nil {
			return err
		}
		buf = data
		// nats.go copies the payload into its write buffer, so buf may
		// be reused for the next run.
		if err := b.nc.Publish(subj, data); err != nil {
			return fmt.Errorf("nats: publish events to %s: %w", subj, err)
		}
		return nil
	}
	start, size := 0, overhead
	for i, f := range events {
		need := perFrame + len(f.Data)
		if overhead+need > limit {
			if err := flush(events[start:i]); err != nil {
				return err
			}
			start, size = i+1, overhead
			b.log.Warn("nats: event larger than the server's payload limit; receivers read it from the store", "seq", f.Seq, "bytes", len(f.Data), "limit", limit)
			data, _ := encode(nil, hub.Message{Kind: hub.KindResync})
			if err := b.nc.Publish(subj, data); err != nil {
				return fmt.Errorf("nats: publish catch-up to %s: %w", subj, err)
			}
			continue
		}
		if size+need > limit {
			if err := flush(events[start:i]); err != nil {
				return err
			}
			start, size = i, overhead
		}
		size += need
	}
	return flush(events[start:])
}

// Subscribe registers fn for the tenant's messages. The first subscriber
// of a tenant in this process subscribes on NATS; the last one's cancel
// unsubscribes.
//
// While connected, Subscribe returns only once the server has confirmed
// the subscription (one round trip), so whatever another process
// publishes after that reaches fn: a socket that reads the store or
// re-checks its credentials after subscribing misses neither an event nor
// a revocation. fn then gets a hub.KindResync, which makes the hub ask the
// other processes who is online. Without a connection Subscribe does not
// wait; the reconnect handler catches fn up instead.
func (b *Broker) Subscribe(tenantID string, fn func(hub.Message)) (func(), error) {
	subj, err := b.subject(tenantID)
	if err != nil {
		return nil, err
	}
	s := &subscriber{fn: fn}
	ts, err := b.add(tenantID, subj, s)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	cancel := func() { once.Do(func() { b.unsubscribe(ts, s) }) }
	if !b.nc.IsConnected() {
		return cancel, nil
	}
	if err := b.nc.FlushTimeout(b.confirm); err != nil {
		// Still on its way: confirm it in the background, or after
		// the reconnect this probably is.
		b.log.Warn("nats: subscription not confirmed in time; confirming in the background", "tenant", tenantID, "err", err)
		go b.confirmed(s)
		return cancel, nil
	}
	go b.resync(s)
	return cancel, nil
}

// add registers s for the tenant, subscribing on NATS if it is the
// tenant's first subscriber in this process.
func (b *Broker) add(tenantID, subj string, s *subscriber) (*tenantSub, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("nats: broker closed")
	}
	ts := b.tenants[tenantID]
	if ts == nil {
		ts = &tenantSub{id: tenantID}
		ts.fns.Store(&[]*subscriber{})
		sub, err := b.nc.Subscribe(subj, func(msg *natsgo.Msg) { b.receive(ts, msg) })
		if err != nil {
			return nil, fmt.Errorf("nats: subscribe to tenant %s: %w", tenantID, err)
		}
		ts.sub = sub
		b.tenants[tenantID] = ts
	}
	old := *ts.fns.Load()
	next := make([]*subscriber, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	ts.fns.Store(&next)
	return ts, nil
}

// confirmed waits for a round trip to the server, after which the
// server knows of every subscription sent before, then asks s to catch
// up. Without a connection the reconnect handler does it instead.
func (b *Broker) confirmed(s *subscriber) {
	if err := b.nc.FlushTimeout(b.confirm); err != nil {
		b.log.Debug("nats: subscription not confirmed; catching up after reconnect", "err", err)
		return
	}
	b.resync(s)
}

func (b *Broker) unsubscribe(ts *tenantSub, s *subscriber) {
	s.dead.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *ts.fns.Load()
	next := make([]*subscriber, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	ts.fns.Store(&next)
	if len(next) > 0 || b.tenants[ts.id] != ts {
		return
	}
	delete(b.tenants, ts.id)
	if err := ts.sub.Unsubscribe(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) {
		b.log.Warn("nats: unsubscribe", "tenant", ts.id, "err", err)
	}
}

// receive is the NATS callback of a tenant: nats.go calls it for one
// subscription at a time, in arrival order, which keeps the per-publisher
// order. It holds no lock while calling the hub.
func (b *Broker) receive(ts *tenantSub, msg *natsgo.Msg) {
	m, err := decode(msg.Data)
	if err != nil {
		// Treat it as lost: whatever it carried, the store has.
		b.log.Warn("nats: undecodable message; catching up from the store", "tenant", ts.id, "err", err)
		m = hub.Message{Kind: hub.KindResync}
		b.resyncs.Add(1)
	} else if m.Kind == hub.KindResync {
		b.resyncs.Add(1)
	}
	for _, s := range *ts.fns.Load() {
		if !s.dead.Load() {
			s.fn(m)
		}
	}
}

func (b *Broker) resync(s *subscriber) {
	if s.dead.Load() {
		return
	}
	b.resyncs.Add(1)
	s.fn(hub.Message{Kind: hub.KindResync})
}

// resyncAll runs after a reconnect: nats.go has resent the subscriptions;
// once the server confirms them, everything missed meanwhile is in the
// store and every tenant catches up. The other processes of the tenants
// whose messages NATS refused meanwhile are told to catch up too.
func (b *Broker) resyncAll() {
	<-b.ready
	if err := b.nc.FlushTimeout(b.confirm); err != nil {
		b.log.Warn("nats: reconnect not confirmed; catching up on the next one", "err", err)
		return
	}
	b.mu.Lock()
	var all []*subscriber
	for _, ts := range b.tenants {
		all = append(all, *ts.fns.Load()...)
	}
	unsent := b.unsent
	b.unsent = make(map[string]struct{})
	b.mu.Unlock()
	for _, s := range all {
		b.resync(s)
	}
	b.announceUnsent(unsent)
}

// announceUnsent asks the other processes of each tenant to catch up
// from the store: some of this process's messages for it never left.
// Tenants whose announcement fails too are kept for the next connection.
func (b *Broker) announceUnsent(tenants map[string]struct{}) {
	if len(tenants) == 0 {
		return
	}
	data, err := encode(nil, hub.Message{Kind: hub.KindResync})
	if err != nil {
		b.log.Error("nats: encode catch-up", "err", err)
		return
	}
	for id := range tenants {
		subj, err := b.subject(id)
		if err == nil {
			err = b.nc.Publish(subj, data)
		}
		if err != nil {
			b.log.Warn("nats: could not ask other processes to catch up; their head checks will", "tenant", id, "err", err)
			b.mu.Lock()
			b.unsent[id] = struct{}{}
			b.mu.Unlock()
		}
	}
	b.log.Info("nats: asked other processes to catch up after messages NATS did not take", "tenants", len(tenants))
}

// resyncSlow runs when nats.go dropped messages of a subscription that
// could not keep up. It waits for the backlog to drain, so the catch-up
// comes after the last drop, then catches the tenant up.
func (b *Broker) resyncSlow(sub *natsgo.Subscription) {
	wait := time.NewTimer(0)
	defer wait.Stop()
	for range 500 {
		<-wait.C
		if n, _, err := sub.Pending(); err != nil || n == 0 {
			break
		}
		wait.Reset(10 * time.Millisecond)
	}
	b.mu.Lock()
	var subs []*subscriber
	for _, ts := range b.tenants {
		if ts.sub == sub {
			subs = *ts.fns.Load()
			break
		}
	}
	b.mu.Unlock()
	for _, s := range subs {
		b.resync(s)
	}
}
