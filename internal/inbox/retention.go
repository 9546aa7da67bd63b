package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CollRetention holds a tenant's retention policy ("settings") and how far
// the purge has tombstoned its event log ("events").
const CollRetention = "retention"

const (
	retentionSettingsKey = "settings"
	retentionEventsKey   = "events"
)

// MaxRetentionDays bounds messages_days (100 years): a larger number is a
// typo, and would overflow time arithmetic.
const MaxRetentionDays = 36500

// RetentionSettings is a tenant's policy: messages (and their media) older
// than MessagesDays days are purged; 0 keeps them forever.
type RetentionSettings struct {
	MessagesDays int `json:"messages_days"`
}

// PurgeReport counts what one purge removed from one tenant.
type PurgeReport struct {
	Messages      int
	Conversations int // conversations whose last message went
	Events        int // events emptied
}

func retentionOf(tx Tx, tenant string) (RetentionSettings, error) {
	var rs RetentionSettings
	err := tx.Get(tenantColl(tenant, CollRetention), retentionSettingsKey, &rs)
	if errors.Is(err, ErrNotFound) {
		return RetentionSettings{}, nil
	}
	return rs, err
}

// Retention reads the tenant's policy (admin).
func (s *Service) Retention(ctx context.Context, p Principal) (RetentionSettings, error) {
	if err := p.requireAdmin(); err != nil {
		return RetentionSettings{}, err
	}
	var rs RetentionSettings
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		rs, err = retentionOf(tx, p.Tenant.ID)
		return err
	})
	if err != nil {
		return RetentionSettings{}, fmt.Errorf("read retention: %w", err)
	}
	return rs, nil
}

// SetRetention changes the tenant's policy (admin) and returns it.
func (s *Service) SetRetention(ctx context.Context, p Principal, rs RetentionSettings) (RetentionSettings, error) {
	if err := p.requireAdmin(); err != nil {
		return RetentionSettings{}, err
	}
	if rs.MessagesDays < 0 || rs.MessagesDays > MaxRetentionDays {
		return RetentionSettings{}, invalid("messages_days must be between 0 (keep forever) and %d", MaxRetentionDays)
	}
	err := s.store.Update(ctx, func(tx Tx) error {
		if err := tx.Put(tenantColl(p.Tenant.ID, CollRetention), retentionSettingsKey, rs); err != nil {
			return err
		}
		return s.audit(tx, p, AuditRetentionChanged, "settings", "retention")
	})
	if err != nil {
		return RetentionSettings{}, fmt.Errorf("save retention: %w", err)
	}
	return rs, nil
}

// PurgeExpired applies every tenant's policy once: messages older than it
// are deleted with their indexes (their media is released, and the media
// cleanup removes the files), conversations lose a last_message that went,
// and older events carrying messages or conversations become tombstones.
// Each step is a small transaction, so live traffic goes on between them.
// What was removed is recorded in each tenant's audit log.
func (s *Service) PurgeExpired(ctx context.Context) error {
	var tenants []string
	err := s.store.View(ctx, func(tx Tx) error {
		return tx.Scan(global(CollTenants), "", "", false, func(k string, _ []byte) (bool, error) {
			tenants = append(tenants, k)
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range tenants {
		if err := s.purgeTenant(ctx, t); err != nil {
			return fmt.Errorf("purge tenant %s: %w", t, err)
		}
	}
	return nil
}

func (s *Service) purgeTenant(ctx context.Context, tenant string) error {
	var rs RetentionSettings
	var convs []string
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		if rs, err = retentionOf(tx, tenant); err != nil || rs.MessagesDays == 0 {
			return err
		}
		return tx.Scan(tenantColl(tenant, CollConversations), "", "", false, func(k string, _ []byte) (bool, error) {
			convs = append(convs, k)
			return true, nil
		})
	})
	if err != nil || rs.MessagesDays == 0 {
		return err
	}
	cutoff := s.clock().Add(-time.Duration(rs.MessagesDays) * 24 * time.Hour)
	before := cutoff.Format(sortableTime)
	var rep PurgeReport
	for _, id := range convs {
		for {
			n, err := s.purgeConversationStep(ctx, tenant, id, cutoff, before, &rep)
			if err != nil {
				return err
			}
			if n < erasureBatch {
				break
			}
		}
	}
	for {
		more, err := s.purgeEventsStep(ctx, tenant, cutoff, &rep)
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	if rep == (PurgeReport{}) {
		return nil
	}
	return s.store.Update(ctx, func(tx Tx) error {
		return s.auditAs(tx, tenant, AuditActor{Type: "system", ID: "retention", Name: "OneBox"}, "",
			AuditRetentionPurged, AuditTarget{Type: "settings", ID: "retention"},
			map[string]int{"messages": rep.Messages, "conversations": rep.Conversations, "events": rep.Events, "messages_days": rs.MessagesDays})
	})
}

func (s *Service) purgeConversationStep(ctx context.Context, tenant, convID string, cutoff time.Time, before string, rep *PurgeReport) (int, error) {
	n := 0
	var step PurgeReport // added to rep once: a store may run the fn more than once
	err := s.store.Update(ctx, func(tx Tx) error {
		step = PurgeReport{}
		var conv Conversation
		if err := getIn(tx, tenant, CollConversations, convID, "conversation", &conv); err != nil {
			if ErrorCode(err) == CodeNotFound {
				return nil // erased meanwhile
			}
			return err
		}
		conv.TenantID = tenant
		var err error
		if n, err = s.deleteMessages(tx, conv, before, erasureBatch, func(Message) {}); err != nil {
			return err
		}
		step.Messages += n
		if n < erasureBatch && conv.LastMessage != nil && conv.LastMessage.CreatedAt.Before(cutoff) {
			conv.LastMessage = nil
			step.Conversations++
			return s.putConversation(tx, conv, EventConversationUpdated)
		}
		return nil
	})
	if err == nil {
		rep.Messages += step.Messages
		rep.Conversations += step.Conversations
	}
	return n, err
}

// purgeEventsStep empties up to a batch of message and conversation events
// older than cutoff, from where the last run stopped. It reports whether
// older events may remain.
func (s *Service) purgeEventsStep(ctx context.Context, tenant string, cutoff time.Time, rep *PurgeReport) (bool, error) {
	more := false
	events := 0 // added to rep once: a store may run the fn more than once
	err := s.store.Update(ctx, func(tx Tx) error {
		more, events = false, 0
		rw, ok := tx.(EventRewriter)
		if !ok {
			return errors.New("the store cannot rewrite its event log")
		}
		var from uint64
		if err := tx.Get(tenantColl(tenant, CollRetention), retentionEventsKey, &from); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if from == 0 {
			from = 1
		}
		var stop uint64 // first event not old enough
		n := 0
		next, err := rw.RewriteEvents(tenant, from, erasureBatch*10, func(e *Event) bool {
			if stop != 0 || !e.At.Before(cutoff) {
				if stop == 0 {
					stop = e.Seq
				}
				return false
			}
			if !strings.HasPrefix(e.Type, "message.") && !strings.HasPrefix(e.Type, "conversation.") {
				return false
			}
			e.Type, e.Data = EventTombstone, json.RawMessage(`{}`)
			n++
			return true
		})
		if err != nil {
			return err
		}
		events = n
		switch {
		case stop != 0:
			from = stop
		case next != 0:
			from, more = next, true
		default:
			head, err := tx.Head(tenant)
			if err != nil {
				return err
			}
			from = head + 1
		}
		return tx.Put(tenantColl(tenant, CollRetention), retentionEventsKey, from)
	})
	if err == nil {
		rep.Events += events
	}
	return more, err
}

// AccessDataRetention is how long data about access to OneBox is kept:
// expired sessions (device names) and the client IP addresses in audit
// entries.
const AccessDataRetention = 30 * 24 * time.Hour

// PurgeAccessData deletes sessions that expired, and blanks the IP of
// audit entries older than AccessDataRetention, in small transactions. It
// reports how many sessions and addresses it removed.
func (s *Service) PurgeAccessData(ctx context.Context) (sessions, ips int, err error) {
	now := s.clock()
	for {
		var expired []Session
		err := s.store.View(ctx, func(tx Tx) error {
			return scanJSON(tx, global(CollSessions), "", func(se Session) bool {
				if !se.ExpiresAt.After(now) {
					expired = append(expired, se)
				}
				return len(expired) < erasureBatch
			})
		})
		if err != nil || len(expired) == 0 {
			return sessions, ips, err
		}
		err = s.store.Update(ctx, func(tx Tx) error {
			for _, se := range expired {
				if err := tx.Delete(global(CollSessions), se.Hash); err != nil {
					return err
				}
				if err := dropSessionPush(tx, se); err != nil {
					return err
				}
				if err := tx.Delete(tenantColl(se.TenantID, CollKeySessions), se.KeyID+"/"+se.Hash); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return sessions, ips, fmt.Errorf("purge sessions: %w", err)
		}
		sessions += len(expired)
		if len(expired) < erasureBatch {
			break
		}
	}
	var tenants []string
	err = s.store.View(ctx, func(tx Tx) error {
		return tx.Scan(global(CollTenants), "", "", false, func(k string, _ []byte) (bool, error) {
			tenants = append(tenants, k)
			return true, nil
		})
	})
	if err != nil {
		return sessions, ips, err
	}
	end := now.Add(-AccessDataRetention).Format(sortableTime)
	for _, t := range tenants {
		for {
			n := 0
			err := s.store.Update(ctx, func(tx Tx) error {
				var stale []string
				var entries []AuditEntry
				err := tx.Scan(tenantColl(t, CollAudit), "", "", false, func(k string, raw []byte) (bool, error) {
					if k >= end || len(stale) == erasureBatch {
						return false, nil
					}
					var e AuditEntry
					if err := json.Unmarshal(raw, &e); err != nil {
						return false, err
					}
					if e.IP != "" {
						stale, entries = append(stale, k), append(entries, e)
					}
					return true, nil
				})
				if err != nil {
					return err
				}
				for i, k := range stale {
					entries[i].IP = ""
					if err := tx.Put(tenantColl(t, CollAudit), k, entries[i]); err != nil {
						return err
					}
				}
				n = len(stale)
				return nil
			})
			if err != nil {
				return sessions, ips, fmt.Errorf("purge audit addresses: %w", err)
			}
			ips += n
			if n < erasureBatch {
				break
			}
		}
	}
	return sessions, ips, nil
}
