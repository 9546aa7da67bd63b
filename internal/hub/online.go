package hub

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"
)

// OnlineAsker is a Broker that can ask every other process which agents of a
// tenant it holds sockets of. A process learns who is online in a tenant
// from the tenant's presence messages, which reach only processes
// subscribed to the tenant, that is holding sockets of it. Any process may
// serve the agents list, so one holding none asks instead of answering
// "everyone offline".
type OnlineAsker interface {
	// AskOnline returns the union of the answers that arrive within the
	// broker's answer window (or until ctx ends): the processes holding
	// no socket of the tenant do not answer, so the window is always
	// waited out.
	AskOnline(ctx context.Context, tenantID string) ([]string, error)
	// AnswerOnline makes fn answer other processes' questions until
	// cancel; fn returns the agents this process holds sockets of, and an
	// empty answer is not sent.
	AnswerOnline(fn func(tenantID string) []string) (cancel func(), err error)
}

// askTimeout bounds one question, whatever the broker's window.
const askTimeout = 5 * time.Second

var errVerifyLength = errors.New("hub: verify answered for a different number of sessions")

// onlineAnswer is the last answer the other processes gave about a tenant.
// done is closed once agents and at are set; callers arriving meanwhile wait
// for it rather than ask again.
type onlineAnswer struct {
	done   chan struct{}
	agents []string
	at     time.Time // when the answer came (or the question failed)
}

// askOnline answers Online for a tenant this process holds no sockets of.
func (h *Hub) askOnline(tenantID string) []string {
	h.amu.Lock()
	if a := h.asked[tenantID]; a != nil {
		select {
		case <-a.done:
			if time.Since(a.at) < h.opts.OnlineCache {
				h.amu.Unlock()
				return slices.Clone(a.agents)
			}
		default:
			h.amu.Unlock()
			<-a.done
			return slices.Clone(a.agents)
		}
	}
	a := &onlineAnswer{done: make(chan struct{})}
	h.asked[tenantID] = a
	h.pruneAnswersLocked()
	h.amu.Unlock()

	ctx, cancel := context.WithTimeout(h.ctx, askTimeout)
	agents, err := h.asker.AskOnline(ctx, tenantID)
	cancel()
	if err != nil {
		if h.ctx.Err() == nil {
			h.log.Warn("hub: could not ask the other processes who is online", "tenant", tenantID, "err", err)
		}
		// Kept for OnlineCache like an answer, so a broken link is
		// neither asked nor logged at every call.
		agents = nil
	}
	a.at = time.Now()
	sort.Strings(agents)
	agents = dedupSorted(agents)
	a.agents = agents
	close(a.done)
	return slices.Clone(agents)
}

// pruneAnswersLocked forgets expired answers once there are many, so asking
// about many tenants does not grow the map for ever. The caller holds amu.
func (h *Hub) pruneAnswersLocked() {
	if len(h.asked) < 256 {
		return
	}
	for id, a := range h.asked {
		select {
		case <-a.done:
			if time.Since(a.at) >= h.opts.OnlineCache {
				delete(h.asked, id)
			}
		default:
		}
	}
}

// localAgents answers another process's question: the agents this process
// holds sockets of in the tenant, nil for a tenant it holds none of. It is
// called from the broker's callback and takes only short hub locks.
func (h *Hub) localAgents(tenantID string) []string {
	h.mu.Lock()
	t := h.tenants[tenantID]
	h.mu.Unlock()
	if t == nil {
		return nil
	}
	t.mu.RLock()
	agents := make([]string, 0, len(t.local))
	for a := range t.local {
		agents = append(agents, a)
	}
	t.mu.RUnlock()
	sort.Strings(agents)
	return agents
}

func dedupSorted(s []string) []string {
	if len(s) < 2 {
		return s
	}
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}
