package inbox

import (
	"context"
	"strings"
)

// EchoAuthor is the author of messages the business sent from a provider's
// own app: a person of the team, but not one OneBox knows.
const EchoAuthor = "system"

// RecordEchoes stores messages a provider reports the business sent to a
// customer (TikTok's im_send_msg). An echo of OneBox's own send is
// recognised by its provider id, or, when the echo overtakes the answer to
// the send call, matched to the reply being sent in that conversation; it
// is stored once. Anything else was sent from the provider's own app and
// appears in the conversation as an outbound message. In each Inbound,
// ContactHandle and ContactName are the customer's.
func (s *Service) RecordEchoes(ctx context.Context, channelID string, batch []Inbound) ([]Received, error) {
	return s.storeBatch(ctx, channelID, batch, s.echoOne)
}

func (s *Service) echoOne(tx Tx, ch Channel, in Inbound) (Received, error) {
	tenant := ch.TenantID
	if r, seen, err := seenBefore(tx, ch, in.ExternalID); seen || err != nil {
		return r, err
	}
	now := s.clock()
	contact, conv, isNew, err := s.threadFor(tx, ch, in, now)
	if err != nil {
		return Received{}, err
	}
	if !isNew && in.ExternalID != "" {
		mine, err := s.sendingMatch(tx, tenant, conv.ID, in)
		if err != nil {
			return Received{}, err
		}
		if mine != nil {
			if mine.ExternalID != "" {
				// The second part of a reply: remember its id too.
				err = tx.Put(tenantColl(tenant, CollExternalIDs), ch.ID+"/"+in.ExternalID, mine.ID)
			} else {
				err = s.linkExternal(tx, *mine, ch.ID, in.ExternalID, MsgSent)
			}
			if err != nil {
				return Received{}, err
			}
			m, err := messageOf(tx, tenant, mine.ID)
			return Received{Message: m, Duplicate: true}, err
		}
	}
	// The provider has it, so it is at least sent, and reports about it
	// that came before the echo apply now.
	pending, err := takePending(tx, tenant, ch.ID, in.ExternalID)
	if err != nil {
		return Received{}, err
	}
	st, e := foldStatus(MsgPending, append([]pendingReport{{Status: MsgSent}}, pending...))
	m := Message{
		ID: s.newID(), TenantID: tenant, ConversationID: conv.ID, Direction: DirectionOut,
		Author: Author{Type: EchoAuthor}, Kind: in.Kind, Text: in.Text, Media: in.Media,
		Status: st, Error: e, ExternalID: in.ExternalID, CreatedAt: now, UpdatedAt: now,
	}
	if _, err := putMessage(tx, m); err != nil {
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
	OnOutbound(&conv, m)
	conv.Contact = ContactRef{ID: contact.ID, Name: contact.Name, Handle: contact.Handle}
	if isNew {
		if err := s.putConversation(tx, conv, EventConversationCreated); err != nil {
			return Received{}, err
		}
		return Received{Message: m}, s.emit(tx, tenant, EventMessageCreated, m)
	}
	if err := s.emit(tx, tenant, EventMessageCreated, m); err != nil {
		return Received{}, err
	}
	return Received{Message: m}, s.putConversation(tx, conv, EventConversationUpdated)
}

// sendingMatch finds the reply of a conversation that is being handed to
// the provider right now and says what the echo says: the echo is of it.
func (s *Service) sendingMatch(tx Tx, tenant, convID string, in Inbound) (*Message, error) {
	var found *Message
	err := scanJSON(tx, global(CollOutbox), tenant+"/", func(o OutboxItem) bool {
		if o.ConversationID != convID || o.Kind != "" || o.Sending == nil {
			return true
		}
		m, err := messageOf(tx, tenant, o.MessageID)
		if err != nil {
			return true
		}
		// A reply with an attachment may come back as two echoes (the
		// attachment, then its text): either part matches.
		same := strings.TrimSpace(m.Text) == strings.TrimSpace(in.Text)
		if in.Kind != KindText {
			same = m.Kind == in.Kind
		}
		if same {
			found = &m
			return false
		}
		return true
	})
	return found, err
}
