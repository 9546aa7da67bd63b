package inbox

import (
	"context"
	"errors"
	"fmt"
)

// SessionsValid reports, for each of a tenant's live sockets' sessions,
// whether it still grants access: the session is stored unchanged (not
// signed out, not ended by its key's revocation), has not expired, its key
// is not revoked, and its agent is active in an existing tenant. It is the
// same test Authenticate makes, by session hash instead of token.
//
// The live fan-out calls it when it may have missed a revocation (its
// link to the other processes dropped for a while): revocations close
// sockets through a live message, not through the event log, so a process
// that was cut off must ask the store. valid[i] answers sessions[i]; all are
// read in one transaction. An error says nothing about any session, so the
// caller keeps its sockets and asks again later.
func (s *Service) SessionsValid(ctx context.Context, sessions []Session) ([]bool, error) {
	valid := make([]bool, len(sessions))
	if len(sessions) == 0 {
		return valid, nil
	}
	err := s.store.View(ctx, func(tx Tx) error {
		now := s.clock()
		// A tenant's sockets share few keys and agents: read each once.
		keys := map[string]bool{}
		agents := map[string]bool{}
		tenants := map[string]bool{}
		for i, want := range sessions {
			valid[i] = false
			var got Session
			if err := tx.Get(global(CollSessions), want.Hash, &got); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			if got.TenantID != want.TenantID || got.AgentID != want.AgentID || got.KeyID != want.KeyID ||
				!now.Before(got.ExpiresAt) {
				continue
			}
			t := got.TenantID
			ok, err := cachedCheck(tenants, t, func() (bool, error) {
				var tenant Tenant
				return lookupFound(tx.Get(global(CollTenants), t, &tenant))
			})
			if err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			ok, err = cachedCheck(keys, t+"/"+got.KeyID, func() (bool, error) {
				k, err := keyOf(tx, t, got.KeyID)
				if ok, err := lookupFound(err); !ok || err != nil {
					return false, err
				}
				return k.RevokedAt == nil && k.AgentID == got.AgentID, nil
			})
			if err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			ok, err = cachedCheck(agents, t+"/"+got.AgentID, func() (bool, error) {
				var a Agent
				if ok, err := lookupFound(tx.Get(tenantColl(t, CollAgents), got.AgentID, &a)); !ok || err != nil {
					return false, err
				}
				return a.Active, nil
			})
			if err != nil {
				return err
			}
			valid[i] = ok
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check sessions: %w", err)
	}
	return valid, nil
}

// SessionValid is SessionsValid for one session.
func (s *Service) SessionValid(ctx context.Context, sess Session) (bool, error) {
	valid, err := s.SessionsValid(ctx, []Session{sess})
	if err != nil {
		return false, err
	}
	return valid[0], nil
}

// lookupFound turns a lookup's ErrNotFound into false, and any other error into
// an error.
func lookupFound(err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// cachedCheck runs check once per key within one SessionsValid call.
func cachedCheck(cache map[string]bool, key string, check func() (bool, error)) (bool, error) {
	if ok, seen := cache[key]; seen {
		return ok, nil
	}
	ok, err := check()
	if err != nil {
		return false, err
	}
	cache[key] = ok
	return ok, nil
}
