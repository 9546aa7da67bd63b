package inbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Collections of status reports that arrived before the message they are
// about was known (a provider's "sent" webhook can overtake the answer to
// our own send call).
const (
	// per tenant: channel id + "/" + provider id -> pendingStatus
	CollPendingStatus = "pending_status"
	// global: arrival time + "/" + tenant + "/" + channel id + "/" + provider id -> ""
	CollPendingStatusDue = "pending_status_due"
)

// PendingStatusTTL is how long a report about an unknown message is kept
// in case the message shows up. Past it the report is dropped: providers
// also report on messages sent from their own apps, which OneBox never sees.
const PendingStatusTTL = 24 * time.Hour

// maxPendingReports bounds what is kept for one unknown message; a
// provider sends a handful of reports per message at most.
const maxPendingReports = 8

// pendingStatus is what is kept about one unknown provider message.
type pendingStatus struct {
	Since   time.Time       `json:"since"`
	Reports []pendingReport `json:"reports"`
}

type pendingReport struct {
	Status MessageStatus `json:"status"`
	Error  *MessageError `json:"error,omitempty"`
}

func pendingKey(channelID, externalID string) string { return channelID + "/" + externalID }

func pendingDueKey(since time.Time, tenant, channelID, externalID string) string {
	return since.UTC().Format(sortableTime) + "/" + tenant + "/" + channelID + "/" + externalID
}

// keepPending stores a report about a message that is not known (yet).
func (s *Service) keepPending(tx Tx, tenant, channelID string, r StatusReport) error {
	if r.ExternalID == "" {
		return nil
	}
	coll := tenantColl(tenant, CollPendingStatus)
	key := pendingKey(channelID, r.ExternalID)
	var p pendingStatus
	err := tx.Get(coll, key, &p)
	switch {
	case errors.Is(err, ErrNotFound):
		p = pendingStatus{Since: s.clock()}
		if err := tx.Put(global(CollPendingStatusDue), pendingDueKey(p.Since, tenant, channelID, r.ExternalID), ""); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if len(p.Reports) >= maxPendingReports {
		return nil
	}
	p.Reports = append(p.Reports, pendingReport{Status: r.Status, Error: r.Error})
	return tx.Put(coll, key, p)
}

// takePending removes and returns the reports kept for a provider id.
func takePending(tx Tx, tenant, channelID, externalID string) ([]pendingReport, error) {
	if externalID == "" {
		return nil, nil
	}
	coll := tenantColl(tenant, CollPendingStatus)
	key := pendingKey(channelID, externalID)
	var p pendingStatus
	if err := tx.Get(coll, key, &p); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	if err := tx.Delete(coll, key); err != nil {
		return nil, err
	}
	if err := tx.Delete(global(CollPendingStatusDue), pendingDueKey(p.Since, tenant, channelID, externalID)); err != nil {
		return nil, err
	}
	return p.Reports, nil
}

// foldStatus applies reports in arrival order to a status, as if each had
// been applied when it came: the rules of AdvanceStatus decide, so order
// of arrival cannot move a message backwards.
func foldStatus(cur MessageStatus, reports []pendingReport) (MessageStatus, *MessageError) {
	var e *MessageError
	for _, r := range reports {
		if next, ok := AdvanceStatus(cur, r.Status); ok {
			cur = next
			if next == MsgFailed {
				e = r.Error
			}
		}
	}
	return cur, e
}

// linkExternal records that a provider id names message m (the provider
// accepted our send, or echoed it back) and applies whatever reports about
// that id arrived first, together with next, in one change.
func (s *Service) linkExternal(tx Tx, m Message, channelID, externalID string, next MessageStatus) error {
	changed := false
	if externalID != "" && m.ExternalID != externalID {
		m.ExternalID = externalID
		changed = true
		if err := tx.Put(tenantColl(m.TenantID, CollExternalIDs), channelID+"/"+externalID, m.ID); err != nil {
			return err
		}
	}
	pending, err := takePending(tx, m.TenantID, channelID, externalID)
	if err != nil {
		return err
	}
	reports := append([]pendingReport{{Status: next}}, pending...)
	st, e := foldStatus(m.Status, reports)
	if m.Direction != DirectionOut || m.Private {
		st = m.Status
	}
	if st == m.Status && !changed {
		return nil
	}
	if st != m.Status {
		m.Status = st
		m.Error = nil
		if st == MsgFailed {
			m.Error = e
		}
	}
	m.UpdatedAt = s.clock()
	return s.saveUpdated(tx, m)
}

// saveUpdated stores a changed message, announces it, and refreshes the
// conversation's preview when it is the conversation's last message.
func (s *Service) saveUpdated(tx Tx, m Message) error {
	raw, err := putMessage(tx, m)
	if err != nil {
		return err
	}
	if err := s.emitEncoded(tx, m.TenantID, EventMessageUpdated, m, raw); err != nil {
		return err
	}
	c, err := s.conversationOf(tx, m.TenantID, m.ConversationID)
	if err != nil {
		return err
	}
	if c.LastMessage == nil || c.LastMessage.ID != m.ID {
		return nil
	}
	mm := m
	c.LastMessage = &mm
	return s.putConversation(tx, c, EventConversationUpdated)
}

// DropStaleStatuses forgets reports about messages that never showed up
// within PendingStatusTTL. It is called periodically and returns how many
// were dropped.
func (s *Service) DropStaleStatuses(ctx context.Context, now time.Time) (int, error) {
	limit := now.Add(-PendingStatusTTL).UTC().Format(sortableTime)
	var keys []string
	err := s.store.View(ctx, func(tx Tx) error {
		return tx.Scan(global(CollPendingStatusDue), "", "", false, func(k string, _ []byte) (bool, error) {
			if k >= limit {
				return false, nil
			}
			keys = append(keys, k)
			return len(keys) < 1000, nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("find stale statuses: %w", err)
	}
	if len(keys) == 0 {
		return 0, nil
	}
	err = s.store.Update(ctx, func(tx Tx) error {
		for _, k := range keys {
			parts := strings.SplitN(k, "/", 3)
			if len(parts) != 3 {
				continue
			}
			if err := tx.Delete(global(CollPendingStatusDue), k); err != nil {
				return err
			}
			if err := tx.Delete(tenantColl(parts[1], CollPendingStatus), parts[2]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("drop stale statuses: %w", err)
	}
	return len(keys), nil
}

// ReadUpTo marks the tenant's replies to a contact as read up to a moment
// (TikTok reports "read up to here" rather than per message). Only replies
// the provider has taken (sent or delivered) and written by then move.
func (s *Service) ReadUpTo(ctx context.Context, channelID, handle string, at time.Time) (int, error) {
	n := 0
	err := s.store.Update(ctx, func(tx Tx) error {
		n = 0
		ch, err := s.channelHeader(tx, channelID)
		if err != nil {
			return err
		}
		tenant := ch.TenantID
		var contactID, convID string
		if err := tx.Get(tenantColl(tenant, CollContactHandle), ch.ID+"/"+handle, &contactID); err != nil {
			return ignoreNotFound(err)
		}
		if err := tx.Get(tenantColl(tenant, CollContactConv), contactID, &convID); err != nil {
			return ignoreNotFound(err)
		}
		var toRead []Message
		scanned := 0
		err = tx.Scan(tenantColl(tenant, CollMessages), convID+"/", "", true, func(_ string, raw []byte) (bool, error) {
			m, err := decode[Message](raw)
			if err != nil {
				return false, err
			}
			scanned++
			if m.Direction == DirectionOut && !m.Private && !m.CreatedAt.After(at) {
				if m.Status == MsgRead {
					return false, nil // everything before was read already
				}
				if m.Status == MsgSent || m.Status == MsgDelivered {
					m.TenantID = tenant
					toRead = append(toRead, m)
				}
			}
			return scanned < 500, nil
		})
		if err != nil {
			return err
		}
		for i := len(toRead) - 1; i >= 0; i-- {
			if err := s.advance(tx, toRead[i], MsgRead, nil); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// ExternalIDsKnown reports which of a channel's provider message ids are
// stored already, so an adapter can skip costly work (downloading media)
// for a redelivered message.
func (s *Service) ExternalIDsKnown(ctx context.Context, channelID string, ids []string) (map[string]bool, error) {
	known := map[string]bool{}
	err := s.store.View(ctx, func(tx Tx) error {
		ch, err := s.channelHeader(tx, channelID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			var msg string
			err := tx.Get(tenantColl(ch.TenantID, CollExternalIDs), ch.ID+"/"+id, &msg)
			if err == nil {
				known[id] = true
				continue
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		return nil
	})
	return known, err
}

// AddExternalID records one more provider id for a message, for replies
// a provider carries as several messages (TikTok: an image, then its
// caption), so echoes and reports about any part find the message.
func (s *Service) AddExternalID(ctx context.Context, channelID, messageID, externalID string) error {
	if externalID == "" {
		return nil
	}
	return s.store.Update(ctx, func(tx Tx) error {
		ch, err := s.channelHeader(tx, channelID)
		if err != nil {
			return err
		}
		if _, err := messageOf(tx, ch.TenantID, messageID); err != nil {
			return err
		}
		return tx.Put(tenantColl(ch.TenantID, CollExternalIDs), ch.ID+"/"+externalID, messageID)
	})
}
