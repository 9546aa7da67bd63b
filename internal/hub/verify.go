package hub

import (
	"context"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Re-checking sockets' credentials. A revocation reaches sockets as a
// KindDisconnect message, which is not in the event log: a process cut off
// from the others while a key was revoked never hears of it. So after any
// possible loss (KindResync) the hub asks the store, through
// Options.Verify, whether its sockets' sessions still hold, and closes those
// that do not with CloseRevoked. With Options.VerifyEvery it also asks
// periodically, so a revocation lost without a reconnect being noticed
// heals within that period.

// VerifyFunc reports, for a tenant's sessions, which still grant access:
// valid[i] answers sessions[i]. An error keeps every socket open; the hub
// asks again at the next catch-up or period.
type VerifyFunc func(ctx context.Context, tenantID string, sessions []inbox.Session) (valid []bool, err error)

// verifyTimeout bounds one tenant's check.
const verifyTimeout = 30 * time.Second

// verifyConcurrency is how many tenants' checks run at once. After a
// reconnect every tenant asks at the same moment, beside the catch-ups
// reading the store; the store's small pool of readers must not be flooded.
const verifyConcurrency = 4

// verifyLater schedules a check of t's sessions, unless Verify is unset.
// A check asked for while one runs makes that one run again once done, so
// a revocation committed during a check is not missed and checks of one
// tenant never pile up. Safe from broker callbacks: the check runs on its
// own goroutine.
func (h *Hub) verifyLater(t *tenant) {
	if h.opts.Verify == nil {
		return
	}
	t.vmu.Lock()
	if t.verifying {
		t.verifyAgain = true
		t.vmu.Unlock()
		return
	}
	t.verifying = true
	t.vmu.Unlock()

	if !h.goBackground() {
		t.vmu.Lock()
		t.verifying = false
		t.vmu.Unlock()
		return
	}
	go func() {
		defer h.background.Done()
		for {
			select {
			case h.verifySlots <- struct{}{}:
				h.verify(t)
				<-h.verifySlots
			case <-h.ctx.Done():
			}
			t.vmu.Lock()
			if !t.verifyAgain {
				t.verifying = false
				t.vmu.Unlock()
				return
			}
			t.verifyAgain = false
			t.vmu.Unlock()
		}
	}()
}

// goBackground counts a goroutine about to start in background, unless
// the hub is closing. It takes no lock a broker callback may not.
func (h *Hub) goBackground() bool {
	h.bgmu.Lock()
	defer h.bgmu.Unlock()
	if h.bgClosed {
		return false
	}
	h.background.Add(1) // before Close's Wait, which sets bgClosed first
	return true
}

// verify checks the sessions of t's sockets once and closes, with
// CloseRevoked, the sockets whose session no longer holds.
func (h *Hub) verify(t *tenant) {
	t.mu.RLock()
	seen := make(map[string]struct{}, len(t.subs))
	sessions := make([]inbox.Session, 0, len(t.subs))
	for s := range t.subs {
		if _, dup := seen[s.session.Hash]; dup {
			continue
		}
		seen[s.session.Hash] = struct{}{}
		sessions = append(sessions, s.session)
	}
	t.mu.RUnlock()
	if len(sessions) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, verifyTimeout)
	defer cancel()
	valid, err := h.opts.Verify(ctx, t.id, sessions)
	if err == nil && len(valid) != len(sessions) {
		err = errVerifyLength
	}
	if err != nil {
		if h.ctx.Err() == nil {
			h.log.Warn("hub: could not re-check sockets' sessions; keeping them open until the next check",
				"tenant", t.id, "sessions", len(sessions), "err", err)
		}
		return
	}
	gone := make(map[string]struct{})
	for i, ok := range valid {
		if !ok {
			gone[sessions[i].Hash] = struct{}{}
		}
	}
	if len(gone) == 0 {
		return
	}
	closed := 0
	t.mu.RLock()
	for s := range t.subs {
		// A socket an earlier check closed may still be listed until a
		// worker removes it: count only what this check closes.
		if _, ok := gone[s.session.Hash]; ok && s.kill(CloseRevoked, "credentials revoked") {
			closed++
		}
	}
	t.mu.RUnlock()
	if closed == 0 {
		return
	}
	h.reverified.Add(uint64(closed))
	// The session hash identifies a credential; log only how many.
	h.log.Info("hub: closed sockets whose credentials were withdrawn while this process could not hear of it",
		"tenant", t.id, "sockets", closed)
}

// verifyPeriodically re-checks every tenant's sessions every VerifyEvery
// until Close.
func (h *Hub) verifyPeriodically() {
	defer h.workers.Done()
	tick := time.NewTicker(h.opts.VerifyEvery)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.mu.Lock()
		ts := make([]*tenant, 0, len(h.tenants))
		for _, t := range h.tenants {
			ts = append(ts, t)
		}
		h.mu.Unlock()
		for _, t := range ts {
			h.verifyLater(t)
		}
	}
}
