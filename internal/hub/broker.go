package hub

import (
	"errors"
	"sync"

	"github.com/onebox/onebox/internal/inbox"
)

// Kind says what a broker Message carries.
type Kind uint8

const (
	// KindEvents carries committed log events, ascending by seq.
	KindEvents Kind = iota + 1
	// KindTyping relays an agent's typing indicator to the tenant's other agents.
	KindTyping
	// KindPresence announces that a node gained its first or lost its last
	// socket of an agent.
	KindPresence
	// KindDisconnect closes the sockets whose session matches, with 4401.
	KindDisconnect
	// KindResync is never published by the hub: a networked broker hands
	// it to a tenant's subscribers when messages for the tenant may have
	// been lost (after a reconnect, a dropped slow consumer, an event too
	// large to carry, or once a fresh subscription is confirmed: presence
	// messages sent before then did not reach this process). The hub then
	// catches every subscription up from the store, so even a lost last
	// event reaches the sockets, asks the other processes who is online,
	// and re-checks its sockets' sessions (Options.Verify): a revocation
	// may have been lost too. The in-process broker never loses anything
	// and never sends it.
	KindResync
	// KindHeartbeat lists the agents a process (Node) holds sockets of in
	// the tenant, sent every Options.Heartbeat. Receivers forget a process
	// that stops sending them, so agents of a process that died go offline.
	// Ask asks the tenant's other processes to send theirs at once.
	KindHeartbeat
)

// Frame is one event already encoded as the wire frame every socket
// receives. Seq travels beside the bytes so a receiver can drop duplicates
// and notice gaps without decoding.
type Frame struct {
	Seq  uint64
	Data []byte
}

// Message is everything the hub sends between processes for one tenant.
// It is a plain struct so a networked broker can serialise it as it likes;
// the in-process broker passes it by value and shares the byte slices, which
// receivers treat as read-only.
type Message struct {
	Kind    Kind
	Events  []Frame     // KindEvents
	Frame   []byte      // KindTyping, KindPresence: the frame to hand to sockets
	AgentID string      // KindTyping: the sender; KindPresence: the subject
	Node    string      // KindPresence, KindHeartbeat: the process whose sockets changed
	Online  bool        // KindPresence
	Match   inbox.Match // KindDisconnect
	Agents  []string    // KindHeartbeat: the agents Node holds sockets of
	Ask     bool        // KindHeartbeat
}

// ErrLocalOnly is what a networked broker's Publish returns (wrapped) when
// it handed the message to this process's subscribers but could not send
// it to the other processes. The hub then has nothing to repair locally;
// the other processes find lost events by their head checks
// (Options.Heads).
var ErrLocalOnly = errors.New("delivered in this process only")

// Broker carries a tenant's messages to every process holding sockets of
// that tenant, this one included. It is the seam for running several server
// processes: internal/nats implements it over NATS, and LocalBroker (the
// default) serves a single process. The hub never assumes it is
// in-process.
//
// Publish must not block on receivers. Messages published for one tenant by
// one caller reach each subscriber in the order they were published.
// Implementations must not hold their own locks while calling a subscriber's
// function, because the hub may Subscribe or Publish from inside it.
//
// Subscribe should return only once whatever any process publishes after
// it reaches fn: the socket's owner reads the log and re-checks the
// socket's credentials after subscribing, and relies on the subscription
// to cover everything later (events, and revocations above all). When it
// cannot (no connection), the broker sends KindResync once it can.
type Broker interface {
	Publish(tenantID string, m Message) error
	Subscribe(tenantID string, fn func(Message)) (cancel func(), err error)
}

// LocalBroker is the single-process Broker: Publish calls the tenant's
// subscribers synchronously, which keeps the store's seq order for free.
type LocalBroker struct {
	mu   sync.RWMutex
	subs map[string][]*localSub
}

type localSub struct{ fn func(Message) }

// NewLocalBroker returns an in-process broker.
func NewLocalBroker() *LocalBroker {
	return &LocalBroker{subs: make(map[string][]*localSub)}
}

// Publish hands m to the tenant's current subscribers.
func (b *LocalBroker) Publish(tenantID string, m Message) error {
	b.mu.RLock()
	subs := b.subs[tenantID] // replaced, never mutated in place: safe to use unlocked
	b.mu.RUnlock()
	for _, s := range subs {
		s.fn(m)
	}
	return nil
}

// Subscribe registers fn for the tenant's messages until cancel is called.
func (b *LocalBroker) Subscribe(tenantID string, fn func(Message)) (func(), error) {
	s := &localSub{fn: fn}
	b.mu.Lock()
	old := b.subs[tenantID]
	next := make([]*localSub, len(old), len(old)+1)
	copy(next, old)
	b.subs[tenantID] = append(next, s)
	b.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { b.remove(tenantID, s) }) }, nil
}

func (b *LocalBroker) remove(tenantID string, s *localSub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.subs[tenantID]
	next := make([]*localSub, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	if len(next) == 0 {
		delete(b.subs, tenantID)
		return
	}
	b.subs[tenantID] = next
}
