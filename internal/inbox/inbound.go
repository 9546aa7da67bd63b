package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Inbound is one customer message as a channel adapter parsed it.
type Inbound struct {
	ExternalID    string // the provider's message id: redeliveries are stored once
	ContactHandle string
	ContactName   string
	Kind          string
	Text          string
	Media         *Media
	At            time.Time // when the provider says it was sent; zero = now
	// ContactReplyTo is kept on the contact when the provider addresses
	// replies to something other than the sender's handle.
	ContactReplyTo string
}

// Received is what happened to one Inbound.
type Received struct {
	Message   Message
	Duplicate bool
}

// Receive stores a batch of customer messages from one channel in one
// transaction: a webhook is acknowledged only when all it carried is on
// disk, and a provider's redelivery is recognised by its message id.
func (s *Service) Receive(ctx context.Context, channelID string, batch []Inbound) ([]Received, error) {
	return s.storeBatch(ctx, channelID, batch, s.receiveOne)
}

// storeBatch cleans a channel's batch and stores it in one transaction, each
// item through one; any failure stores nothing of the batch.
func (s *Service) storeBatch(ctx context.Context, channelID string, batch []Inbound,
	one func(Tx, Channel, Inbound) (Received, error)) ([]Received, error) {
	for i := range batch {
		if err := cleanInbound(&batch[i]); err != nil {
			return nil, err
		}
	}
	var out []Received
	// Re-runnable: out is refilled from scratch on every run.
	err := s.updateRerunnable(ctx, func(tx Tx) error {
		out = out[:0]
		ch, err := s.channelHeader(tx, channelID)
		if err != nil {
			return err
		}
		for _, in := range batch {
			r, err := one(tx, ch, in)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func cleanInbound(in *Inbound) error {
	in.ContactHandle = strings.TrimSpace(in.ContactHandle)
	if in.ContactHandle == "" {
		return invalid("inbound message without a sender")
	}
	if in.Kind == "" {
		in.Kind = KindText
	}
	if !utf8.ValidString(in.Text) {
		in.Text = strings.ToValidUTF8(in.Text, "\uFFFD")
	}
	if utf8.RuneCountInString(in.Text) > 4*MaxTextLen {
		in.Text = string([]rune(in.Text)[:4*MaxTextLen])
	}
	in.ContactName, _ = CleanName("name", truncate(in.ContactName, MaxNameLen), false)
	return nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// seenBefore finds a provider message already stored on this channel, so a
// redelivery is answered with the first copy.
func seenBefore(tx Tx, ch Channel, externalID string) (Received, bool, error) {
	if externalID == "" {
		return Received{}, false, nil
	}
	var prev string
	err := tx.Get(tenantColl(ch.TenantID, CollExternalIDs), ch.ID+"/"+externalID, &prev)
	if errors.Is(err, ErrNotFound) {
		return Received{}, false, nil
	}
	if err != nil {
		return Received{}, false, err
	}
	m, err := messageOf(tx, ch.TenantID, prev)
	return Received{Message: m, Duplicate: true}, true, err
}

// threadFor finds (or starts) the contact and conversation a message from
// the channel belongs to.
func (s *Service) threadFor(tx Tx, ch Channel, in Inbound, now time.Time) (Contact, Conversation, bool, error) {
	contact, err := s.contactFor(tx, ch, in, now)
	if err != nil {
		return Contact{}, Conversation{}, false, err
	}
	conv, isNew, err := s.conversationFor(tx, ch, contact, now)
	return contact, conv, isNew, err
}

func (s *Service) receiveOne(tx Tx, ch Channel, in Inbound) (Received, error) {
	tenant := ch.TenantID
	if r, seen, err := seenBefore(tx, ch, in.ExternalID); seen || err != nil {
		return r, err
	}
	now := s.clock()
	contact, conv, isNew, err := s.threadFor(tx, ch, in, now)
	if err != nil {
		return Received{}, err
	}
	m := Message{
		ID: s.newID(), TenantID: tenant, ConversationID: conv.ID, Direction: DirectionIn,
		Author: Author{Type: "contact", ID: contact.ID}, Kind: in.Kind, Text: in.Text, Media: in.Media,
		Status: MsgReceived, ExternalID: in.ExternalID, CreatedAt: now, UpdatedAt: now,
	}
	msgJSON, err := putMessage(tx, m)
	if err != nil {
		return Received{}, err
	}
	if err := s.holdAttachments(tx, m); err != nil {
		return Received{}, err
	}
	if in.ExternalID != "" {
		if err := tx.Put(tenantColl(tenant, CollExternalIDs), ch.ID+"/"+in.ExternalID, m.ID); err != nil {
			return Received{}, err
		}
	}
	OnInbound(&conv, m)
	conv.Contact = ContactRef{ID: contact.ID, Name: contact.Name, Handle: contact.Handle}
	if isNew {
		// Apps learn of the conversation before its first message.
		if err := s.putConversation(tx, conv, EventConversationCreated); err != nil {
			return Received{}, err
		}
		return Received{Message: m}, s.emitEncoded(tx, tenant, EventMessageCreated, m, msgJSON)
	}
	if err := s.emitEncoded(tx, tenant, EventMessageCreated, m, msgJSON); err != nil {
		return Received{}, err
	}
	return Received{Message: m}, s.putConversation(tx, conv, EventConversationUpdated)
}

// contactFor finds the sender by handle on this channel, creating them on
// first contact and keeping their display name current.
func (s *Service) contactFor(tx Tx, ch Channel, in Inbound, now time.Time) (Contact, error) {
	tenant := ch.TenantID
	var id string
	err := tx.Get(tenantColl(tenant, CollContactHandle), ch.ID+"/"+in.ContactHandle, &id)
	if err == nil {
		c, err := s.contactOf(tx, tenant, id)
		if err != nil {
			return Contact{}, err
		}
		if (in.ContactName != "" && in.ContactName != c.Name) || (in.ContactReplyTo != "" && in.ContactReplyTo != c.ReplyTo) {
			if in.ContactName != "" {
				c.Name = in.ContactName
			}
			if in.ContactReplyTo != "" {
				c.ReplyTo = in.ContactReplyTo
			}
			if err := tx.Put(tenantColl(tenant, CollContacts), c.ID, c); err != nil {
				return Contact{}, err
			}
		}
		c.TenantID = tenant
		return c, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Contact{}, err
	}
	name := in.ContactName
	if name == "" {
		name = in.ContactHandle
	}
	c := Contact{ID: s.newID(), TenantID: tenant, ChannelID: ch.ID, Name: name, Handle: in.ContactHandle, ReplyTo: in.ContactReplyTo, CreatedAt: now}
	if err := tx.Put(tenantColl(tenant, CollContacts), c.ID, c); err != nil {
		return Contact{}, err
	}
	return c, tx.Put(tenantColl(tenant, CollContactHandle), ch.ID+"/"+in.ContactHandle, c.ID)
}

// contactOf loads a contact.
func (s *Service) contactOf(tx Tx, tenant, id string) (Contact, error) {
	var raw json.RawMessage
	if err := getIn(tx, tenant, CollContacts, id, "contact", &raw); err != nil {
		return Contact{}, err
	}
	c, err := s.decoded.contacts.decode(recordKey(tenant, id), raw, nil)
	if err != nil {
		return Contact{}, fmt.Errorf("load contact: decode: %w", err)
	}
	c.TenantID = tenant
	return c, nil
}

// conversationFor keeps one conversation per contact: a returning customer
// continues their thread, with its history, rather than starting afresh.
func (s *Service) conversationFor(tx Tx, ch Channel, contact Contact, now time.Time) (Conversation, bool, error) {
	tenant := ch.TenantID
	var id string
	err := tx.Get(tenantColl(tenant, CollContactConv), contact.ID, &id)
	if err == nil {
		c, err := s.conversationOf(tx, tenant, id)
		return c, false, err
	}
	if !errors.Is(err, ErrNotFound) {
		return Conversation{}, false, err
	}
	c := Conversation{
		ID: s.newID(), TenantID: tenant,
		Channel: ChannelRef{ID: ch.ID, Type: ch.Type, Name: ch.Name},
		Contact: ContactRef{ID: contact.ID, Name: contact.Name, Handle: contact.Handle},
		Status:  StatusOpen, Labels: []string{}, LastActivityAt: now, CreatedAt: now, UpdatedAt: now,
	}
	return c, true, tx.Put(tenantColl(tenant, CollContactConv), contact.ID, c.ID)
}

// StatusReport is a provider's news about a message we sent.
type StatusReport struct {
	ExternalID string
	Status     MessageStatus
	Error      *MessageError
}

// ReportStatus applies delivery reports from a channel. A report for a
// message not known yet is kept, and applied if the message shows up
// within PendingStatusTTL (statuses.go); status only moves forward.
func (s *Service) ReportStatus(ctx context.Context, channelID string, reports []StatusReport) error {
	return s.updateRerunnable(ctx, func(tx Tx) error {
		ch, err := s.channelHeader(tx, channelID)
		if err != nil {
			return err
		}
		for _, r := range reports {
			var id string
			err := tx.Get(tenantColl(ch.TenantID, CollExternalIDs), ch.ID+"/"+r.ExternalID, &id)
			if errors.Is(err, ErrNotFound) {
				if err := s.keepPending(tx, ch.TenantID, ch.ID, r); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			m, err := messageOf(tx, ch.TenantID, id)
			if ErrorCode(err) == CodeNotFound {
				continue // erased since
			}
			if err != nil {
				return err
			}
			if err := s.advance(tx, m, r.Status, r.Error); err != nil {
				return err
			}
		}
		return nil
	})
}

// advance moves an outbound message's status forward, updating the
// conversation's preview when this is its last message.
func (s *Service) advance(tx Tx, m Message, next MessageStatus, e *MessageError) error {
	if m.Direction != DirectionOut || m.Private {
		return nil
	}
	st, changed := AdvanceStatus(m.Status, next)
	if !changed {
		return nil
	}
	m.Status = st
	if st == MsgFailed {
		m.Error = e
	} else {
		m.Error = nil
	}
	m.UpdatedAt = s.clock()
	return s.saveUpdated(tx, m)
}

func decode[T any](raw []byte) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode record: %w", err)
	}
	return v, nil
}
