package inbox

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"time"
)

// CreateTenant makes an organization and its first admin, returning the
// admin's raw access key, which is never shown again.
func (s *Service) CreateTenant(ctx context.Context, name string) (Tenant, Agent, AccessKey, string, error) {
	name, err := CleanName("name", name, true)
	if err != nil {
		return Tenant{}, Agent{}, AccessKey{}, "", err
	}
	now := s.clock()
	t := Tenant{ID: s.newID(), Name: name, CreatedAt: now}
	admin := Agent{ID: s.newID(), TenantID: t.ID, Name: "Admin", Role: RoleAdmin, Active: true, CreatedAt: now}
	var key AccessKey
	var raw string
	err = s.store.Update(ctx, func(tx Tx) error {
		if err := tx.Put(global(CollTenants), t.ID, t); err != nil {
			return err
		}
		if err := s.putAgent(tx, admin); err != nil {
			return err
		}
		key, raw, err = s.issueKey(tx, admin, now)
		return err
	})
	if err != nil {
		return Tenant{}, Agent{}, AccessKey{}, "", fmt.Errorf("create tenant: %w", err)
	}
	return t, admin, key, raw, nil
}

// Tenant loads a tenant by id.
func (s *Service) Tenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := s.store.View(ctx, func(tx Tx) error { return tx.Get(global(CollTenants), id, &t) })
	if errors.Is(err, ErrNotFound) {
		return t, notFound("tenant")
	}
	return t, err
}

// putAgent stores an agent and announces it to the tenant's apps.
func (s *Service) putAgent(tx Tx, a Agent) error {
	a.Online, a.Keys = false, nil
	if err := tx.Put(tenantColl(a.TenantID, CollAgents), a.ID, a); err != nil {
		return err
	}
	return s.emit(tx, a.TenantID, EventAgentUpdated, publicAgent(a))
}

// publicAgent is an agent as every member of the tenant may see it.
func publicAgent(a Agent) Agent {
	a.Email, a.Keys = "", nil
	return a
}

// keyRecord is how a key is stored: with its hash and owner, which the
// API's JSON of a key never shows.
type keyRecord struct {
	AccessKey
	Hash    string `json:"hash"`
	AgentID string `json:"agent_id"`
}

func storedKey(k AccessKey) keyRecord {
	return keyRecord{AccessKey: k, Hash: k.Hash, AgentID: k.AgentID}
}

func (r keyRecord) key(tenant string) AccessKey {
	k := r.AccessKey
	k.Hash, k.AgentID, k.TenantID = r.Hash, r.AgentID, tenant
	return k
}

func keyOf(tx Tx, tenant, id string) (AccessKey, error) {
	var r keyRecord
	if err := tx.Get(tenantColl(tenant, CollKeys), id, &r); err != nil {
		return AccessKey{}, err
	}
	return r.key(tenant), nil
}

func (s *Service) issueKey(tx Tx, a Agent, now time.Time) (AccessKey, string, error) {
	raw, prefix, hash := NewAccessKey()
	k := AccessKey{ID: s.newID(), TenantID: a.TenantID, AgentID: a.ID, Prefix: prefix, Hash: hash, CreatedAt: now}
	if err := tx.Put(tenantColl(a.TenantID, CollKeys), k.ID, storedKey(k)); err != nil {
		return AccessKey{}, "", err
	}
	if err := tx.Put(global(CollKeyHashes), hash, KeyRef{TenantID: a.TenantID, KeyID: k.ID}); err != nil {
		return AccessKey{}, "", err
	}
	return k, raw, nil
}

// SignIn trades an access key for a session token. Every failure is the
// same ErrUnauthorized so callers cannot probe which keys exist.
func (s *Service) SignIn(ctx context.Context, rawKey string, dev Device) (Principal, string, error) {
	if !plausibleSecret(rawKey, keyTag) {
		return Principal{}, "", ErrUnauthorized
	}
	dev.Name, _ = CleanName("device.name", dev.Name, false)
	dev.Platform, _ = CleanName("device.platform", dev.Platform, false)
	hash := HashSecret(rawKey)
	token, tokenHash := NewSessionToken()
	var p Principal
	err := s.store.Update(ctx, func(tx Tx) error {
		p = Principal{} // a store may run the fn more than once
		var ref KeyRef
		if err := tx.Get(global(CollKeyHashes), hash, &ref); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrUnauthorized
			}
			return err
		}
		k, err := keyOf(tx, ref.TenantID, ref.KeyID)
		if err != nil {
			return unauthorizedIfMissing(err)
		}
		if k.RevokedAt != nil || !sameHash(k.Hash, hash) {
			return ErrUnauthorized
		}
		if err := tx.Get(global(CollTenants), ref.TenantID, &p.Tenant); err != nil {
			return unauthorizedIfMissing(err)
		}
		if err := tx.Get(tenantColl(ref.TenantID, CollAgents), k.AgentID, &p.Agent); err != nil {
			return unauthorizedIfMissing(err)
		}
		if !p.Agent.Active {
			return ErrUnauthorized
		}
		now := s.clock()
		k.LastUsedAt = &now
		if err := tx.Put(tenantColl(ref.TenantID, CollKeys), k.ID, storedKey(k)); err != nil {
			return err
		}
		p.Agent.TenantID = ref.TenantID
		p.Agent.LastSeenAt = &now
		if err := tx.Put(tenantColl(ref.TenantID, CollAgents), p.Agent.ID, p.Agent); err != nil {
			return err
		}
		p.Session = Session{Hash: tokenHash, TenantID: ref.TenantID, AgentID: k.AgentID, KeyID: k.ID,
			Device: dev, CreatedAt: now, ExpiresAt: now.Add(s.sessionTTL)}
		if err := tx.Put(global(CollSessions), tokenHash, p.Session); err != nil {
			return err
		}
		return tx.Put(tenantColl(ref.TenantID, CollKeySessions), k.ID+"/"+tokenHash, "")
	})
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			return Principal{}, "", ErrUnauthorized
		}
		return Principal{}, "", fmt.Errorf("sign in: %w", err)
	}
	p.Agent.Online = true
	return p, token, nil
}

func unauthorizedIfMissing(err error) error {
	if errors.Is(err, ErrNotFound) {
		return ErrUnauthorized
	}
	return err
}

// Authenticate resolves a bearer token to who holds it. Revoked keys,
// deactivated agents and expired sessions all fail the same way.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !plausibleSecret(token, sessionTag) {
		return Principal{}, ErrUnauthorized
	}
	hash := HashSecret(token)
	var p Principal
	err := s.store.View(ctx, func(tx Tx) error {
		if err := tx.Get(global(CollSessions), hash, &p.Session); err != nil {
			return unauthorizedIfMissing(err)
		}
		if !s.clock().Before(p.Session.ExpiresAt) {
			return ErrUnauthorized
		}
		t := p.Session.TenantID
		k, err := keyOf(tx, t, p.Session.KeyID)
		if err != nil {
			return unauthorizedIfMissing(err)
		}
		if k.RevokedAt != nil {
			return ErrUnauthorized
		}
		if err := tx.Get(global(CollTenants), t, &p.Tenant); err != nil {
			return unauthorizedIfMissing(err)
		}
		if err := tx.Get(tenantColl(t, CollAgents), p.Session.AgentID, &p.Agent); err != nil {
			return unauthorizedIfMissing(err)
		}
		if !p.Agent.Active {
			return ErrUnauthorized
		}
		p.Agent.TenantID = t
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			return Principal{}, ErrUnauthorized
		}
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	return p, nil
}

// SignOut ends the caller's session and closes its sockets.
func (s *Service) SignOut(ctx context.Context, p Principal) error {
	err := s.store.Update(ctx, func(tx Tx) error {
		if err := tx.Delete(global(CollSessions), p.Session.Hash); err != nil {
			return err
		}
		if err := dropSessionPush(tx, p.Session); err != nil {
			return err
		}
		return tx.Delete(tenantColl(p.Tenant.ID, CollKeySessions), p.Session.KeyID+"/"+p.Session.Hash)
	})
	if err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	s.live.Disconnect(p.Tenant.ID, Match{SessionHash: p.Session.Hash})
	return nil
}

// ListAgents shows the tenant's agents; admins also see emails and keys.
func (s *Service) ListAgents(ctx context.Context, p Principal) ([]Agent, error) {
	var agents []Agent
	keys := map[string][]AccessKey{}
	err := s.store.View(ctx, func(tx Tx) error {
		if err := scanJSON(tx, tenantColl(p.Tenant.ID, CollAgents), "", func(a Agent) bool {
			agents = append(agents, a)
			return true
		}); err != nil {
			return err
		}
		if !p.IsAdmin() {
			return nil
		}
		return scanJSON(tx, tenantColl(p.Tenant.ID, CollKeys), "", func(r keyRecord) bool {
			k := r.key(p.Tenant.ID)
			keys[k.AgentID] = append(keys[k.AgentID], k)
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	online := map[string]bool{}
	for _, id := range s.live.Online(p.Tenant.ID) {
		online[id] = true
	}
	for i := range agents {
		a := &agents[i]
		a.Online = online[a.ID]
		if p.IsAdmin() {
			a.Keys = sortKeys(keys[a.ID])
			if a.Keys == nil {
				a.Keys = []AccessKey{}
			}
		} else {
			*a = publicAgent(*a)
			a.Online = online[a.ID]
		}
	}
	sort.Slice(agents, func(i, j int) bool { return agents[i].CreatedAt.Before(agents[j].CreatedAt) })
	return agents, nil
}

func sortKeys(ks []AccessKey) []AccessKey {
	sort.Slice(ks, func(i, j int) bool { return ks[i].CreatedAt.Before(ks[j].CreatedAt) })
	return ks
}

// NewAgent is what an admin fills in to add a person.
type NewAgent struct {
	Name  string
	Email string
	Role  Role
}

// CreateAgent adds a person to the tenant with a first access key.
func (s *Service) CreateAgent(ctx context.Context, p Principal, in NewAgent) (Agent, AccessKey, string, error) {
	if err := p.requireAdmin(); err != nil {
		return Agent{}, AccessKey{}, "", err
	}
	name, err := CleanName("name", in.Name, true)
	if err != nil {
		return Agent{}, AccessKey{}, "", err
	}
	email, err := cleanEmail(in.Email)
	if err != nil {
		return Agent{}, AccessKey{}, "", err
	}
	if in.Role == "" {
		in.Role = RoleAgent
	}
	if !in.Role.Valid() {
		return Agent{}, AccessKey{}, "", invalid("role must be admin or agent")
	}
	now := s.clock()
	a := Agent{ID: s.newID(), TenantID: p.Tenant.ID, Name: name, Email: email, Role: in.Role, Active: true, CreatedAt: now}
	var key AccessKey
	var raw string
	err = s.store.Update(ctx, func(tx Tx) error {
		if err := s.putAgent(tx, a); err != nil {
			return err
		}
		if err := s.audit(tx, p, AuditAgentCreated, "agent", a.ID); err != nil {
			return err
		}
		key, raw, err = s.issueKey(tx, a, now)
		if err != nil {
			return err
		}
		return s.audit(tx, p, AuditKeyIssued, "key", key.ID)
	})
	if err != nil {
		return Agent{}, AccessKey{}, "", fmt.Errorf("create agent: %w", err)
	}
	return a, key, raw, nil
}

func cleanEmail(e string) (string, error) {
	e, err := CleanName("email", e, false)
	if err != nil || e == "" {
		return e, err
	}
	addr, perr := mail.ParseAddress(e)
	if perr != nil || addr.Address != e {
		return "", invalid("email is not a valid address")
	}
	return e, nil
}

func (s *Service) agentOf(tx Tx, tenant, id string) (Agent, error) {
	var a Agent
	if err := getIn(tx, tenant, CollAgents, id, "agent", &a); err != nil {
		return Agent{}, err
	}
	a.TenantID = tenant
	return a, nil
}

// ListKeys shows an agent's keys (never the raw keys).
func (s *Service) ListKeys(ctx context.Context, p Principal, agentID string) ([]AccessKey, error) {
	if err := p.requireAdmin(); err != nil {
		return nil, err
	}
	keys := []AccessKey{}
	err := s.store.View(ctx, func(tx Tx) error {
		if _, err := s.agentOf(tx, p.Tenant.ID, agentID); err != nil {
			return err
		}
		return scanJSON(tx, tenantColl(p.Tenant.ID, CollKeys), "", func(r keyRecord) bool {
			if r.AgentID == agentID {
				keys = append(keys, r.key(p.Tenant.ID))
			}
			return true
		})
	})
	if err != nil {
		return nil, err
	}
	return sortKeys(keys), nil
}

// IssueKey gives an active agent another access key (a new device, or a
// replacement for a revoked one).
func (s *Service) IssueKey(ctx context.Context, p Principal, agentID string) (AccessKey, string, error) {
	if err := p.requireAdmin(); err != nil {
		return AccessKey{}, "", err
	}
	var key AccessKey
	var raw string
	err := s.store.Update(ctx, func(tx Tx) error {
		a, err := s.agentOf(tx, p.Tenant.ID, agentID)
		if err != nil {
			return err
		}
		if !a.Active {
			return Errorf(CodeConflict, "the agent is deactivated")
		}
		key, raw, err = s.issueKey(tx, a, s.clock())
		if err != nil {
			return err
		}
		return s.audit(tx, p, AuditKeyIssued, "key", key.ID)
	})
	if err != nil {
		return AccessKey{}, "", err
	}
	return key, raw, nil
}

// RevokeKey withdraws a key: its sessions end in the same transaction and
// its live sockets are closed right after. Revoking twice is harmless.
func (s *Service) RevokeKey(ctx context.Context, p Principal, agentID, keyID string) error {
	if err := p.requireAdmin(); err != nil {
		return err
	}
	err := s.store.Update(ctx, func(tx Tx) error {
		if _, err := s.agentOf(tx, p.Tenant.ID, agentID); err != nil {
			return err
		}
		var r keyRecord
		if err := getIn(tx, p.Tenant.ID, CollKeys, keyID, "key", &r); err != nil {
			return err
		}
		k := r.key(p.Tenant.ID)
		if k.AgentID != agentID {
			return notFound("key")
		}
		if err := s.audit(tx, p, AuditKeyRevoked, "key", k.ID); err != nil {
			return err
		}
		return s.revokeKey(tx, k)
	})
	if err != nil {
		return err
	}
	s.live.Disconnect(p.Tenant.ID, Match{KeyID: keyID})
	return nil
}

func (s *Service) revokeKey(tx Tx, k AccessKey) error {
	if k.RevokedAt == nil {
		now := s.clock()
		k.RevokedAt = &now
		if err := tx.Put(tenantColl(k.TenantID, CollKeys), k.ID, storedKey(k)); err != nil {
			return err
		}
	}
	if err := tx.Delete(global(CollKeyHashes), k.Hash); err != nil {
		return err
	}
	if err := dropKeyPush(tx, k); err != nil {
		return err
	}
	var sessions []string
	c := tenantColl(k.TenantID, CollKeySessions)
	if err := tx.Scan(c, k.ID+"/", "", false, func(key string, _ []byte) (bool, error) {
		sessions = append(sessions, key)
		return true, nil
	}); err != nil {
		return err
	}
	for _, key := range sessions {
		if err := tx.Delete(global(CollSessions), key[len(k.ID)+1:]); err != nil {
			return err
		}
		if err := tx.Delete(c, key); err != nil {
			return err
		}
	}
	return nil
}

// DeactivateAgent removes a person from the team: their keys are revoked
// and their conversations go back to the unassigned queue so no customer
// waits on someone who has left.
func (s *Service) DeactivateAgent(ctx context.Context, p Principal, agentID string) error {
	if err := p.requireAdmin(); err != nil {
		return err
	}
	err := s.store.Update(ctx, func(tx Tx) error {
		a, err := s.agentOf(tx, p.Tenant.ID, agentID)
		if err != nil {
			return err
		}
		if a.Active && a.Role == RoleAdmin {
			admins := 0
			if err := scanJSON(tx, tenantColl(p.Tenant.ID, CollAgents), "", func(o Agent) bool {
				if o.Active && o.Role == RoleAdmin {
					admins++
				}
				return true
			}); err != nil {
				return err
			}
			if admins <= 1 {
				return Errorf(CodeConflict, "the last active admin cannot be deactivated")
			}
		}
		var keys []AccessKey
		if err := scanJSON(tx, tenantColl(p.Tenant.ID, CollKeys), "", func(r keyRecord) bool {
			if r.AgentID == agentID {
				keys = append(keys, r.key(p.Tenant.ID))
			}
			return true
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := s.revokeKey(tx, k); err != nil {
				return err
			}
		}
		if err := s.unassignAll(tx, p.Tenant.ID, agentID); err != nil {
			return err
		}
		if !a.Active {
			return nil
		}
		if err := s.audit(tx, p, AuditAgentDeactivated, "agent", agentID); err != nil {
			return err
		}
		a.Active = false
		return s.putAgent(tx, a)
	})
	if err != nil {
		return err
	}
	s.live.Disconnect(p.Tenant.ID, Match{AgentID: agentID})
	return nil
}

func (s *Service) unassignAll(tx Tx, tenant, agentID string) error {
	var convs []Conversation
	if err := scanJSON(tx, tenantColl(tenant, CollConversations), "", func(c Conversation) bool {
		if c.AssigneeID != nil && *c.AssigneeID == agentID {
			convs = append(convs, c)
		}
		return true
	}); err != nil {
		return err
	}
	for _, c := range convs {
		c.TenantID = tenant
		c.AssigneeID = nil
		c.UpdatedAt = s.clock()
		if err := s.putConversation(tx, c, EventConversationUpdated); err != nil {
			return err
		}
	}
	return nil
}
