package hub

import (
	"context"
	"time"
)

// Checking the store's head. A networked broker can lose an event with no
// one noticing: the process that committed it is killed before it
// publishes, or its publish fails (a NATS reconnect buffer overflowing).
// The tenant's other processes then learn of the hole only when a later
// event shows them a seq jump, and in a quiet tenant that may be never.
// So, with Options.Heads and Options.CatchUpEvery set, the hub asks the
// store every CatchUpEvery for the head of each tenant that has been
// quiet since the last check, and catches up from the store every
// subscription that has queued less than the head. A busy tenant needs no
// question: its next event reveals any hole at once.
//
// A lost event thus reaches every socket within about two periods of the
// tenant's last activity, exactly once and in order, through the same
// catch-up a broker-reported loss uses.

// HeadsFunc returns the heads of tenants (the last seq each log has
// committed). A tenant left out of the answer has written nothing yet.
type HeadsFunc func(ctx context.Context, tenants []string) (map[string]uint64, error)

// headTimeout bounds one head question.
const headTimeout = 5 * time.Second

// headBatch is how many tenants one head question names: a process
// holding sockets of thousands of quiet tenants asks a few questions a
// period, not thousands.
const headBatch = 500

// checkHeadsPeriodically asks for the head of quiet tenants every
// CatchUpEvery until Close.
func (h *Hub) checkHeadsPeriodically() {
	defer h.workers.Done()
	tick := time.NewTicker(h.opts.CatchUpEvery)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.checkHeads()
	}
}

// checkHeads runs one round: the tenants that heard no event since the
// previous round, asked about headBatch at a time, one question after
// another so a round costs the store one connection at a time.
func (h *Hub) checkHeads() {
	h.mu.Lock()
	quiet := make([]*tenant, 0, len(h.tenants))
	for _, t := range h.tenants {
		if !t.heard.Swap(false) { // busy: the next event reveals any hole
			quiet = append(quiet, t)
		}
	}
	h.mu.Unlock()
	for len(quiet) > 0 && h.ctx.Err() == nil {
		batch := quiet[:min(headBatch, len(quiet))]
		quiet = quiet[len(batch):]
		ids := make([]string, len(batch))
		for i, t := range batch {
			ids[i] = t.id
		}
		ctx, cancel := context.WithTimeout(h.ctx, headTimeout)
		heads, err := h.opts.Heads(ctx, ids)
		cancel()
		if err != nil {
			if h.ctx.Err() == nil {
				h.log.Warn("hub: could not read the store's heads; asking again next period", "tenants", len(ids), "err", err)
			}
			continue
		}
		for _, t := range batch {
			head := heads[t.id]
			if n := h.catchUpBehind(t, head); n > 0 {
				h.log.Info("hub: sockets were behind the store's head; catching them up from the store",
					"tenant", t.id, "head", head, "sockets", n)
			}
		}
	}
}

// catchUpBehind queues a catch-up for each started subscription that has
// not queued every event up to head, and returns how many it found. Each
// is counted before its catch-up is queued, so the count never lags
// what the socket sees.
func (h *Hub) catchUpBehind(t *tenant, head uint64) int {
	n := 0
	t.mu.RLock()
	defer t.mu.RUnlock()
	for s := range t.subs {
		s.mu.Lock()
		behind := s.started && !s.closed && s.lastQueued < head
		s.mu.Unlock()
		if behind {
			h.behind.Add(1)
			s.enqueue(item{resync: true})
			n++
		}
	}
	return n
}

// catchUpLocal catches up from the store every subscription of the
// tenant in this process: the broker failed to carry events committed
// here, which the local sockets must not miss.
func (h *Hub) catchUpLocal(tenantID string) {
	if h.opts.Fill == nil {
		return
	}
	h.mu.Lock()
	t := h.tenants[tenantID]
	h.mu.Unlock()
	if t == nil {
		return
	}
	t.mu.RLock()
	for s := range t.subs {
		s.enqueue(item{resync: true})
	}
	t.mu.RUnlock()
}
