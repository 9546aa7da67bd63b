package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

func messageKey(convID, msgID string) string { return convID + "/" + msgID }

// putMessage stores m and its id index.
// putMessage stores m and its id index, returning m's encoding so the
// event that announces it need not encode it again.
func putMessage(tx Tx, m Message) (json.RawMessage, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	if err := tx.Put(tenantColl(m.TenantID, CollMessages), messageKey(m.ConversationID, m.ID), Encoded(raw)); err != nil {
		return nil, err
	}
	return raw, tx.Put(tenantColl(m.TenantID, CollMessageIndex), m.ID, m.ConversationID)
}

func messageOf(tx Tx, tenant, id string) (Message, error) {
	var conv string
	if err := getIn(tx, tenant, CollMessageIndex, id, "message", &conv); err != nil {
		return Message{}, err
	}
	var m Message
	if err := getIn(tx, tenant, CollMessages, messageKey(conv, id), "message", &m); err != nil {
		return Message{}, err
	}
	m.TenantID = tenant
	return m, nil
}

// ListMessages returns the newest limit messages older than before (or the
// newest overall), oldest first.
func (s *Service) ListMessages(ctx context.Context, p Principal, convID, before string, limit int) ([]Message, error) {
	limit = ClampLimit(limit)
	out := []Message{}
	err := s.store.View(ctx, func(tx Tx) error {
		if _, err := s.conversationOf(tx, p.Tenant.ID, convID); err != nil {
			return err
		}
		prefix := convID + "/"
		after := ""
		if before != "" {
			m, err := messageOf(tx, p.Tenant.ID, before)
			if err != nil || m.ConversationID != convID {
				return invalid("before is not a message of this conversation")
			}
			after = messageKey(convID, before)
		}
		return tx.Scan(tenantColl(p.Tenant.ID, CollMessages), prefix, after, true, func(_ string, raw []byte) (bool, error) {
			m, err := decode[Message](raw)
			if err != nil {
				return false, err
			}
			out = append(out, m)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	for i := range out {
		out[i] = s.presentMessage(p.Tenant.ID, out[i])
	}
	return out, nil
}

// Draft is what an agent writes into a conversation.
type Draft struct {
	ClientID  string
	Text      string
	MediaID   string
	ProductID string
	Private   bool
}

// SendMessage stores an agent's reply (or private note). A reply is
// stored as pending together with its outbox entry, so it is sent even if
// the server restarts right after answering. created is false when the
// client_id was seen before: the earlier message is returned and nothing
// is sent twice.
func (s *Service) SendMessage(ctx context.Context, p Principal, convID string, d Draft) (Message, bool, error) {
	if _, err := uuid.Parse(d.ClientID); err != nil {
		return Message{}, false, invalid("client_id must be a UUID made by the client")
	}
	d.Text = strings.TrimSpace(d.Text)
	if utf8.RuneCountInString(d.Text) > MaxTextLen {
		return Message{}, false, invalid("text is at most %d characters", MaxTextLen)
	}
	if d.MediaID != "" && d.ProductID != "" {
		return Message{}, false, invalid("send either media_id or product_id, not both")
	}
	if d.Text == "" && d.MediaID == "" && d.ProductID == "" {
		return Message{}, false, invalid("text is required")
	}
	var m Message
	created := false
	err := s.store.Update(ctx, func(tx Tx) error {
		m, created = Message{}, false // a store may run the fn more than once
		c, err := s.conversationOf(tx, p.Tenant.ID, convID)
		if err != nil {
			return err
		}
		var prev string
		err = tx.Get(tenantColl(p.Tenant.ID, CollClientIDs), d.ClientID, &prev)
		switch {
		case err == nil:
			m, err = messageOf(tx, p.Tenant.ID, prev)
			if err != nil {
				return err
			}
			if m.ConversationID != convID {
				return Errorf(CodeConflict, "client_id was already used for another conversation")
			}
			return nil
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if !d.Private {
			if err := checkReply(c, d.Text, s.clock()); err != nil {
				return err
			}
		}
		kind, media, product, err := attachments(tx, p.Tenant.ID, d)
		if err != nil {
			return err
		}
		now := s.clock()
		m = Message{
			ID: s.newID(), TenantID: p.Tenant.ID, ConversationID: convID, ClientID: d.ClientID,
			Direction: DirectionOut, Author: Author{Type: "agent", ID: p.Agent.ID},
			Kind: kind, Text: d.Text, Media: media, Product: product, Status: MsgPending, CreatedAt: now, UpdatedAt: now,
		}
		if d.Private {
			m.Kind, m.Private, m.Status = KindNote, true, MsgSent
		}
		msgJSON, err := putMessage(tx, m)
		if err != nil {
			return err
		}
		if err := s.holdAttachments(tx, m); err != nil {
			return err
		}
		if err := tx.Put(tenantColl(p.Tenant.ID, CollClientIDs), d.ClientID, m.ID); err != nil {
			return err
		}
		if !m.Private {
			item := OutboxItem{TenantID: p.Tenant.ID, MessageID: m.ID, ConversationID: convID, ChannelID: c.Channel.ID, NextAt: now}
			if err := tx.Put(global(CollOutbox), item.key(), item); err != nil {
				return err
			}
		}
		if err := s.emitEncoded(tx, p.Tenant.ID, EventMessageCreated, m, msgJSON); err != nil {
			return err
		}
		OnOutbound(&c, m)
		created = true
		return s.putConversation(tx, c, EventConversationUpdated)
	})
	if err != nil {
		return Message{}, false, err
	}
	if created && !m.Private {
		s.onOutbound()
	}
	return s.presentMessage(p.Tenant.ID, m), created, nil
}
