package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ContactExport is everything stored about one contact, for the person's
// right to a copy of their data.
type ContactExport struct {
	ExportedAt    time.Time            `json:"exported_at"`
	Contact       Contact              `json:"contact"`
	Conversations []ConversationExport `json:"conversations"`
}

// ConversationExport is one conversation with all its messages, oldest
// first; media carry signed links.
type ConversationExport struct {
	Conversation
	Messages []Message `json:"messages"`
}

// ExportContact gathers a contact's data (admin) and records the export in
// the audit log.
func (s *Service) ExportContact(ctx context.Context, p Principal, contactID string) (ContactExport, error) {
	if err := p.requireAdmin(); err != nil {
		return ContactExport{}, err
	}
	out := ContactExport{ExportedAt: s.clock(), Conversations: []ConversationExport{}}
	err := s.store.View(ctx, func(tx Tx) error {
		if err := getIn(tx, p.Tenant.ID, CollContacts, contactID, "contact", &out.Contact); err != nil {
			return err
		}
		out.Contact.TenantID = p.Tenant.ID
		var convID string
		if err := tx.Get(tenantColl(p.Tenant.ID, CollContactConv), contactID, &convID); errors.Is(err, ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		var conv Conversation
		if err := getIn(tx, p.Tenant.ID, CollConversations, convID, "conversation", &conv); err != nil {
			return err
		}
		conv.TenantID = p.Tenant.ID
		ce := ConversationExport{Conversation: s.presentConversation(conv), Messages: []Message{}}
		err := tx.Scan(tenantColl(p.Tenant.ID, CollMessages), convID+"/", "", false, func(_ string, raw []byte) (bool, error) {
			var m Message
			if err := json.Unmarshal(raw, &m); err != nil {
				return false, fmt.Errorf("decode message: %w", err)
			}
			ce.Messages = append(ce.Messages, s.presentMessage(p.Tenant.ID, m))
			return true, nil
		})
		out.Conversations = append(out.Conversations, ce)
		return err
	})
	if err != nil {
		return ContactExport{}, err
	}
	err = s.store.Update(ctx, func(tx Tx) error {
		return s.audit(tx, p, AuditContactExported, "contact", contactID)
	})
	if err != nil {
		return ContactExport{}, fmt.Errorf("record export: %w", err)
	}
	return out, nil
}

// MediaIDs lists the media an export links to, for a download that
// includes the files.
func (e ContactExport) MediaIDs() []string {
	var ids []string
	seen := map[string]bool{}
	for _, c := range e.Conversations {
		for _, m := range c.Messages {
			if m.Media != nil && m.Media.ID != "" && !seen[m.Media.ID] {
				seen[m.Media.ID] = true
				ids = append(ids, m.Media.ID)
			}
		}
	}
	return ids
}
