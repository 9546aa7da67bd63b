package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// CollAudit is the tenant's audit log: sortable time + "/" + entry id ->
// AuditEntry. Entries are only ever added by the service, in the same
// transaction as the change they record; no API changes or removes them.
const CollAudit = "audit"

// Audit actions.
const (
	AuditKeyIssued         = "key.issued"
	AuditKeyRevoked        = "key.revoked"
	AuditAgentCreated      = "agent.created"
	AuditAgentDeactivated  = "agent.deactivated"
	AuditChannelCreated    = "channel.created"
	AuditChannelDeleted    = "channel.deleted"
	AuditContactExported   = "contact.exported"
	AuditErasureRequested  = "erasure.requested"
	AuditErasureCompleted  = "erasure.completed"
	AuditRetentionChanged  = "retention.changed"
	AuditRetentionPurged   = "retention.purged"
	AuditPushSettingsSaved = "push_settings.changed"
)

// AuditActor is who did something: an agent, or the server itself (jobs,
// requests from a provider such as Meta's deletion callback).
type AuditActor struct {
	Type string `json:"type"` // agent, system, provider
	ID   string `json:"id"`
	Name string `json:"name"`
}

// AuditTarget is what was acted on.
type AuditTarget struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID     string      `json:"id"`
	At     time.Time   `json:"at"`
	Action string      `json:"action"`
	Actor  AuditActor  `json:"actor"`
	Target AuditTarget `json:"target"`
	IP     string      `json:"ip"`
	// Detail holds counts for job entries (what a purge removed); never
	// personal data.
	Detail map[string]int `json:"detail,omitempty"`

	key string // its key in CollAudit, the next page's cursor
}

func agentActor(p Principal) AuditActor {
	return AuditActor{Type: "agent", ID: p.Agent.ID, Name: p.Agent.Name}
}

// audit records what p did, in tx, so the entry exists exactly when the
// change does.
func (s *Service) audit(tx Tx, p Principal, action, targetType, targetID string) error {
	return s.auditAs(tx, p.Tenant.ID, agentActor(p), p.IP, action, AuditTarget{Type: targetType, ID: targetID}, nil)
}

func (s *Service) auditAs(tx Tx, tenant string, actor AuditActor, ip, action string, target AuditTarget, detail map[string]int) error {
	now := s.clock()
	e := AuditEntry{
		ID: s.newID(), At: now, Action: action,
		Actor: actor, Target: target, IP: ip, Detail: detail,
	}
	if err := tx.Put(tenantColl(tenant, CollAudit), now.Format(sortableTime)+"/"+e.ID, e); err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	return nil
}

// AuditLog lists the tenant's audit entries newest first (admin). The
// cursor is the opaque next_cursor of the previous page.
func (s *Service) AuditLog(ctx context.Context, p Principal, limit int, cursor string) ([]AuditEntry, string, error) {
	if err := p.requireAdmin(); err != nil {
		return nil, "", err
	}
	if cursor != "" && !strings.Contains(cursor, "/") {
		return nil, "", invalid("cursor is not one this server gave out")
	}
	limit = ClampLimit(limit)
	out := []AuditEntry{}
	next := ""
	err := s.store.View(ctx, func(tx Tx) error {
		return tx.Scan(tenantColl(p.Tenant.ID, CollAudit), "", cursor, true, func(k string, raw []byte) (bool, error) {
			if len(out) == limit {
				next = out[len(out)-1].key
				return false, nil
			}
			var e AuditEntry
			if err := json.Unmarshal(raw, &e); err != nil {
				return false, fmt.Errorf("decode audit entry: %w", err)
			}
			out = append(out, e)
			out[len(out)-1].key = k
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("read audit log: %w", err)
	}
	return out, next, nil
}
