// Package wstest has test doubles for the live stream: an in-memory Backend
// with an event log, a real Fiber server around ws.Server, and a WebSocket
// client that reads in the background. Only tests import it.
package wstest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Backend implements ws.Backend over in-memory logs, one per tenant.
type Backend struct {
	mu     sync.Mutex
	tokens map[string]inbox.Principal
	logs   map[string][]inbox.Event
	oldest map[string]uint64 // first retained seq; absent = 1
	pub    inbox.Publisher
	// DataSize pads each event's data, to fill socket buffers quickly.
	DataSize int
}

// NewBackend returns an empty backend.
func NewBackend() *Backend {
	return &Backend{
		tokens: make(map[string]inbox.Principal),
		logs:   make(map[string][]inbox.Event),
		oldest: make(map[string]uint64),
	}
}

// SetPublisher sets where Publish hands committed events (the hub).
func (b *Backend) SetPublisher(p inbox.Publisher) {
	b.mu.Lock()
	b.pub = p
	b.mu.Unlock()
}

// AddSession makes a token for agentID of tenantID signed in with keyID.
func (b *Backend) AddSession(tenantID, agentID, keyID string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	token := fmt.Sprintf("tok-%s-%s-%s-%d", tenantID, agentID, keyID, len(b.tokens))
	b.tokens[token] = inbox.Principal{
		Tenant: inbox.Tenant{ID: tenantID, Name: "Tenant " + tenantID},
		Agent:  inbox.Agent{ID: agentID, TenantID: tenantID, Name: "Agent " + agentID, Role: inbox.RoleAgent, Active: true},
		Session: inbox.Session{Hash: "h-" + token, TenantID: tenantID, AgentID: agentID, KeyID: keyID,
			ExpiresAt: time.Now().Add(time.Hour)},
	}
	return token
}

// Revoke makes token fail authentication.
func (b *Backend) Revoke(token string) {
	b.mu.Lock()
	delete(b.tokens, token)
	b.mu.Unlock()
}

// Authenticate implements ws.Backend.
func (b *Backend) Authenticate(_ context.Context, token string) (inbox.Principal, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.tokens[token]
	if !ok {
		return inbox.Principal{}, inbox.ErrUnauthorized
	}
	return p, nil
}

// Events implements ws.Backend.
func (b *Backend) Events(_ context.Context, p inbox.Principal, since uint64, limit int) ([]inbox.Event, uint64, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	log := b.logs[p.Tenant.ID]
	head := uint64(len(log))
	oldest := b.oldest[p.Tenant.ID]
	if oldest == 0 {
		oldest = 1
	}
	if since > head || since+1 < oldest {
		return nil, head, true, nil
	}
	evs := log[since:]
	if len(evs) > limit {
		evs = evs[:limit]
	}
	return append([]inbox.Event(nil), evs...), head, false, nil
}

// Fill is a hub.FillFunc over the same logs.
func (b *Backend) Fill(_ context.Context, tenantID string, since uint64) ([]inbox.Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	log := b.logs[tenantID]
	if since >= uint64(len(log)) {
		return nil, nil
	}
	return append([]inbox.Event(nil), log[since:]...), nil
}

// Trim pretends the log of tenantID no longer holds seqs below oldest.
func (b *Backend) Trim(tenantID string, oldest uint64) {
	b.mu.Lock()
	b.oldest[tenantID] = oldest
	b.mu.Unlock()
}

// Head is the tenant's last seq.
func (b *Backend) Head(tenantID string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return uint64(len(b.logs[tenantID]))
}

// Publish appends n events to the tenant's log and publishes them, holding
// the lock across both so concurrent callers publish in seq order, as the
// store's commit path does.
func (b *Backend) Publish(tenantID string, n int) []inbox.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	evs := make([]inbox.Event, n)
	for i := range evs {
		evs[i] = b.appendLocked(tenantID)
	}
	if b.pub != nil {
		b.pub.Publish(evs)
	}
	return evs
}

// Append adds an event to the log without publishing it: a lost broker
// message, as far as sockets are concerned.
func (b *Backend) Append(tenantID string) inbox.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.appendLocked(tenantID)
}

type eventData struct {
	Tenant string `json:"tenant"`
	Seq    uint64 `json:"seq"`
	Pad    string `json:"pad,omitempty"`
}

func (b *Backend) appendLocked(tenantID string) inbox.Event {
	seq := uint64(len(b.logs[tenantID]) + 1)
	pad := make([]byte, b.DataSize)
	for i := range pad {
		pad[i] = 'x'
	}
	data, _ := json.Marshal(eventData{Tenant: tenantID, Seq: seq, Pad: string(pad)})
	ev := inbox.Event{Seq: seq, Type: inbox.EventMessageCreated, At: time.Now().UTC(), Data: data, TenantID: tenantID}
	b.logs[tenantID] = append(b.logs[tenantID], ev)
	return ev
}

// EventTenant extracts the tenant the event's data says it belongs to.
func EventTenant(ev *inbox.Event) string {
	var d eventData
	_ = json.Unmarshal(ev.Data, &d)
	return d.Tenant
}
