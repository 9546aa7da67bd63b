package hub

import (
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
	Node    string      // KindPresence: the process whose sockets changed
	Online  bool        // KindPresence
	Match   inbox.Match // KindDisconnect
}

// Broker carries a tenant's messages to every process holding sockets of
// that tenant, this one included. It is the seam for running several server
// processes (NATS later); the hub never assumes it is in-process.
//
// Publish must not block on receivers. Messages published for one tenant by
// one caller reach each subscriber in the order they were published.
// Implementations must not hold their own locks while calling a subscriber's
// function, because the hub may Subscribe or Publish from inside it.
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
