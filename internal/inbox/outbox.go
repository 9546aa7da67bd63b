package inbox

import (
	"context"
	"errors"
	"time"
)

// OutboxItem is an outbound message waiting to be handed to its channel.
// It is written in the same transaction as the message, so an acknowledged
// reply is never forgotten, and removed in the transaction that records the
// channel's answer.
type OutboxItem struct {
	TenantID       string    `json:"tenant_id"`
	MessageID      string    `json:"message_id"`
	ConversationID string    `json:"conversation_id"`
	ChannelID      string    `json:"channel_id"`
	Attempts       int       `json:"attempts"`
	NextAt         time.Time `json:"next_at"`
	LastError      string    `json:"last_error,omitempty"`
}

func (o OutboxItem) key() string { return o.TenantID + "/" + o.MessageID }

// Outgoing is everything a channel needs to send one message.
type Outgoing struct {
	Item    OutboxItem
	Channel Channel
	Contact Contact
	Message Message
	// LastInboundAt is when the customer last wrote: WhatsApp only allows
	// free-form replies within 24 hours of it.
	LastInboundAt *time.Time
}

// SendError is how a channel reports a failed send. Temporary errors are
// retried with backoff; others fail the message with Code and Message shown
// to the agent.
type SendError struct {
	Code       string
	Message    string
	Temporary  bool
	RetryAfter time.Duration
}

func (e *SendError) Error() string { return e.Code + ": " + e.Message }

// MaxSendAttempts bounds retries of temporary failures (about ten hours
// with the backoff below) before the message is marked failed: past that,
// the customer is better served by an agent who knows it did not arrive.
const MaxSendAttempts = 16

// Due lists outbox items whose time has come, oldest first.
func (s *Service) Due(ctx context.Context, now time.Time, limit int) ([]Outgoing, time.Time, error) {
	var out []Outgoing
	var next time.Time
	err := s.store.View(ctx, func(tx Tx) error {
		var items []OutboxItem
		if err := scanJSON(tx, global(CollOutbox), "", func(o OutboxItem) bool {
			if o.NextAt.After(now) {
				if next.IsZero() || o.NextAt.Before(next) {
					next = o.NextAt
				}
				return true
			}
			items = append(items, o)
			return true
		}); err != nil {
			return err
		}
		for _, o := range items {
			if len(out) >= limit {
				next = now
				break
			}
			g, err := s.outgoing(tx, o)
			if err != nil {
				return err
			}
			out = append(out, g)
		}
		return nil
	})
	return out, next, err
}

func (s *Service) outgoing(tx Tx, o OutboxItem) (Outgoing, error) {
	g := Outgoing{Item: o}
	var err error
	// A message, conversation or contact that is gone (erased) leaves the
	// item with no channel: the worker settles it as failed instead of
	// letting one broken entry block the queue.
	if g.Message, err = messageOf(tx, o.TenantID, o.MessageID); err != nil {
		return g, ignoreNotFound(err)
	}
	c, err := s.conversationOf(tx, o.TenantID, o.ConversationID)
	if err != nil {
		return g, ignoreNotFound(err)
	}
	g.LastInboundAt = c.LastInboundAt
	if err := getIn(tx, o.TenantID, CollContacts, c.Contact.ID, "contact", &g.Contact); err != nil {
		return g, ignoreNotFound(err)
	}
	g.Contact.TenantID = o.TenantID
	if ch, err := channelIn(tx, o.ChannelID); err == nil && ch.TenantID == o.TenantID {
		g.Channel = ch
	}
	return g, nil
}

func ignoreNotFound(err error) error {
	if ErrorCode(err) == CodeNotFound {
		return nil
	}
	return err
}

// SendResult records what the channel said about an outbox item: success
// with the provider's id, a temporary failure to retry, or a final failure.
func (s *Service) SendResult(ctx context.Context, o OutboxItem, externalID string, sendErr error) error {
	return s.store.Update(ctx, func(tx Tx) error {
		var cur OutboxItem
		if err := tx.Get(global(CollOutbox), o.key(), &cur); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil // already settled (another worker, or a redelivered status)
			}
			return err
		}
		m, err := messageOf(tx, o.TenantID, o.MessageID)
		if ErrorCode(err) == CodeNotFound {
			return tx.Delete(global(CollOutbox), cur.key())
		}
		if err != nil {
			return err
		}
		var se *SendError
		if sendErr != nil && !errors.As(sendErr, &se) {
			se = &SendError{Code: "send_failed", Message: sendErr.Error(), Temporary: true}
		}
		if se != nil && se.Temporary && cur.Attempts+1 < MaxSendAttempts {
			cur.Attempts++
			cur.LastError = se.Message
			cur.NextAt = s.clock().Add(Backoff(cur.Attempts, se.RetryAfter))
			return tx.Put(global(CollOutbox), cur.key(), cur)
		}
		if err := tx.Delete(global(CollOutbox), cur.key()); err != nil {
			return err
		}
		if se != nil {
			return s.advance(tx, m, MsgFailed, &MessageError{Code: se.Code, Message: se.Message})
		}
		if externalID != "" {
			m.ExternalID = externalID
			if err := tx.Put(tenantColl(o.TenantID, CollExternalIDs), o.ChannelID+"/"+externalID, m.ID); err != nil {
				return err
			}
		}
		return s.advance(tx, m, MsgSent, nil)
	})
}

// Backoff is the wait before retry n (1-based): exponential from 2 s,
// capped at 3 hours, never shorter than what the provider asked for.
func Backoff(n int, retryAfter time.Duration) time.Duration {
	d := 2 * time.Second
	for i := 1; i < n && d < 3*time.Hour; i++ {
		d *= 2
	}
	if d > 3*time.Hour {
		d = 3 * time.Hour
	}
	if retryAfter > d {
		d = retryAfter
	}
	return d
}

// RetryMessage puts a failed reply back in the outbox at an agent's request.
func (s *Service) RetryMessage(ctx context.Context, p Principal, messageID string) (Message, error) {
	var m Message
	err := s.store.Update(ctx, func(tx Tx) error {
		var err error
		m, err = messageOf(tx, p.Tenant.ID, messageID)
		if err != nil {
			return err
		}
		if m.Direction != DirectionOut || m.Status != MsgFailed {
			return Errorf(CodeConflict, "only a failed reply can be retried")
		}
		c, err := s.conversationOf(tx, p.Tenant.ID, m.ConversationID)
		if err != nil {
			return err
		}
		m.Status, m.Error, m.UpdatedAt = MsgPending, nil, s.clock()
		if err := putMessage(tx, m); err != nil {
			return err
		}
		item := OutboxItem{TenantID: p.Tenant.ID, MessageID: m.ID, ConversationID: m.ConversationID, ChannelID: c.Channel.ID, NextAt: s.clock()}
		if err := tx.Put(global(CollOutbox), item.key(), item); err != nil {
			return err
		}
		return s.emit(tx, p.Tenant.ID, EventMessageUpdated, m)
	})
	if err == nil {
		s.onOutbound()
	}
	return m, err
}

// Sender hands one message to a provider. It returns the provider's id for
// the message, or an error (a *SendError says whether to retry). Sending
// the same outbox item twice can happen after a crash between the send and
// its record, so senders pass the message id to providers that deduplicate.
type Sender interface {
	Send(ctx context.Context, g Outgoing) (externalID string, err error)
}
