package inbox

import (
	"context"
	"errors"
	"math/rand/v2"
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
	// Kind is empty for a message to send and OutboxRead for a read
	// receipt about the inbound message MessageID.
	Kind string `json:"kind,omitempty"`
	// QueuedAt starts the retry window (RetryWindow); zero on items
	// written before it existed, in which case the first failure starts it.
	QueuedAt time.Time `json:"queued_at,omitzero"`
	// Sending is set, durably, just before the provider is called and
	// cleared when the outcome is recorded. Found set at the next attempt,
	// it means the process stopped in between and nobody knows whether
	// the provider got the message.
	Sending *time.Time `json:"sending,omitempty"`
}

// OutboxRead is the kind of outbox item that tells a provider the team
// has read a customer's messages (WhatsApp's blue ticks).
const OutboxRead = "read"

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
	// Deferred says the provider was not called at all (a per-channel
	// limit was reached): the item waits RetryAfter and does not count
	// as an attempt.
	Deferred bool
}

func (e *SendError) Error() string { return e.Code + ": " + e.Message }

// RetryWindow is how long temporary failures (network errors, 429, 5xx)
// are retried before the message is marked failed: past that, the
// customer is better served by an agent who knows it did not arrive.
const RetryWindow = 24 * time.Hour

// MaxSendAttempts bounds the attempts of one item even when a provider
// keeps asking for quick retries; the backoff below reaches RetryWindow
// in well under this many.
const MaxSendAttempts = 64

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
	if ch, err := s.channelIn(tx, o.ChannelID); err == nil && ch.TenantID == o.TenantID {
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
		if cur.stale(o) {
			return nil // the outcome of a newer attempt is already recorded
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
		now := s.clock()
		if se != nil && se.Deferred {
			cur.Sending = nil
			cur.NextAt = now.Add(max(se.RetryAfter, 10*time.Millisecond))
			return tx.Put(global(CollOutbox), cur.key(), cur)
		}
		if se != nil && se.Temporary {
			if cur.QueuedAt.IsZero() {
				cur.QueuedAt = now
			}
			deadline := cur.QueuedAt.Add(RetryWindow)
			if now.Before(deadline) && cur.Attempts+1 < MaxSendAttempts {
				cur.Attempts++
				cur.LastError = se.Message
				cur.Sending = nil
				cur.NextAt = now.Add(RetryDelay(cur.Attempts, se.RetryAfter))
				if cur.NextAt.After(deadline) {
					cur.NextAt = deadline // one last try when the window ends
				}
				return tx.Put(global(CollOutbox), cur.key(), cur)
			}
		}
		if err := tx.Delete(global(CollOutbox), cur.key()); err != nil {
			return err
		}
		if se != nil {
			return s.advance(tx, m, MsgFailed, &MessageError{Code: se.Code, Message: se.Message})
		}
		if cur.Kind == OutboxRead {
			return nil
		}
		return s.linkExternal(tx, m, o.ChannelID, externalID, MsgSent)
	})
}

// RetryDelay is the wait before retry n: Backoff with "equal jitter" (a
// random point in its upper half), so messages that failed together
// during a provider's outage do not all come back at the same instant. It
// is never shorter than what the provider asked for.
func RetryDelay(n int, retryAfter time.Duration) time.Duration {
	d := Backoff(n, 0)
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = retryAfter
	}
	return d
}

// staleSend is the message of BeginSend's refusal of an item whose copy is
// out of date.
const staleSend = "another attempt's outcome was recorded meanwhile"

// stale reports whether o, a copy of the item read earlier, is out of
// date: an attempt's outcome or a deferral was recorded since, so the copy
// must be neither sent nor have its result recorded. Sending does not
// count: BeginSend sets it on the stored item only.
func (cur OutboxItem) stale(o OutboxItem) bool {
	return cur.Attempts != o.Attempts || !cur.NextAt.Equal(o.NextAt)
}

// BeginSend durably marks an outbox item as being handed to its provider,
// just before the call. uncertain reports that an earlier attempt was
// marked the same way and its outcome never recorded: the process stopped
// mid-send, and the provider may or may not have the message. A settled
// (absent) item answers not_found: there is nothing left to send. A copy
// listed before another attempt's outcome was recorded answers conflict:
// sending it would repeat that attempt ahead of its retry time.
func (s *Service) BeginSend(ctx context.Context, o OutboxItem) (uncertain bool, err error) {
	err = s.store.Update(ctx, func(tx Tx) error {
		uncertain = false // a store may run the fn more than once
		var cur OutboxItem
		if err := tx.Get(global(CollOutbox), o.key(), &cur); err != nil {
			if errors.Is(err, ErrNotFound) {
				return notFound("outbox item")
			}
			return err
		}
		if cur.stale(o) {
			return Errorf(CodeConflict, "the outbox item changed since it was listed: %s", staleSend)
		}
		if cur.Sending != nil {
			uncertain = true
			return nil
		}
		now := s.clock()
		cur.Sending = &now
		if cur.QueuedAt.IsZero() {
			cur.QueuedAt = now
		}
		return tx.Put(global(CollOutbox), cur.key(), cur)
	})
	return uncertain, err
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
		if err := checkReply(c, m.Text, s.clock()); err != nil {
			return err
		}
		m.Status, m.Error, m.UpdatedAt = MsgPending, nil, s.clock()
		if _, err := putMessage(tx, m); err != nil {
			return err
		}
		item := OutboxItem{TenantID: p.Tenant.ID, MessageID: m.ID, ConversationID: m.ConversationID, ChannelID: c.Channel.ID, NextAt: s.clock(), QueuedAt: s.clock()}
		if err := tx.Put(global(CollOutbox), item.key(), item); err != nil {
			return err
		}
		return s.emit(tx, p.Tenant.ID, EventMessageUpdated, m)
	})
	if err == nil {
		s.onOutbound()
	}
	return s.presentMessage(p.Tenant.ID, m), err
}

// Sender hands one message to a provider. It returns the provider's id for
// the message, or an error (a *SendError says whether to retry). Sending
// the same outbox item twice can happen after a crash between the send and
// its record, so senders pass the message id to providers that deduplicate.
type Sender interface {
	Send(ctx context.Context, g Outgoing) (externalID string, err error)
}
