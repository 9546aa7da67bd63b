package channel

import (
	"context"
	"sync"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Limits bound how hard OneBox pushes one channel (one provider account):
// providers rate-limit per account, and a burst of replies on one channel
// should wait its turn rather than earn a 429 for everyone.
type Limits struct {
	// Concurrency is how many sends may be in flight on one channel.
	Concurrency int
	// PerSecond is the sustained send rate of one channel, and Burst how
	// many may go at once after a quiet spell.
	PerSecond float64
	Burst     int
}

// Claimer marks an outbox item as being sent, durably, before the
// provider is called (inbox.Service.BeginSend).
type Claimer interface {
	BeginSend(ctx context.Context, o inbox.OutboxItem) (uncertain bool, err error)
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Claims records each send before it is made; nil skips the mark
	// (tests of the limits alone).
	Claims Claimer
	Limits Limits
	// Idempotent says the provider deduplicates by OneBox's message id
	// (the SMS gateway protocol carries it), so a send whose outcome was
	// lost in a crash may be made again. Otherwise such a send fails with
	// send_uncertain rather than risk reaching the customer twice.
	Idempotent bool
	// MaxWait is the longest a send waits for the rate limit in place;
	// longer waits hand the item back to the outbox (default 250 ms).
	MaxWait time.Duration
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// Guard wraps a provider's inbox.Sender with per-channel concurrency and
// rate limits and the durable "sending" mark that keeps a restart from
// sending a message twice.
type Guard struct {
	inner  inbox.Sender
	claims Claimer
	limits Limits
	idem   bool
	wait   time.Duration
	now    func() time.Time

	mu       sync.Mutex
	channels map[string]*bucket
}

var _ inbox.Sender = (*Guard)(nil)

// bucket is one channel's token bucket and in-flight count.
type bucket struct {
	tokens   float64
	last     time.Time
	inflight int
}

// NewGuard wraps inner. Zero limits mean no limit of that kind.
func NewGuard(inner inbox.Sender, cfg GuardConfig) *Guard {
	g := &Guard{inner: inner, claims: cfg.Claims, limits: cfg.Limits, idem: cfg.Idempotent,
		wait: cfg.MaxWait, now: cfg.Now, channels: map[string]*bucket{}}
	if g.wait <= 0 {
		g.wait = 250 * time.Millisecond
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.limits.Burst <= 0 {
		g.limits.Burst = max(1, int(g.limits.PerSecond))
	}
	return g
}

// Deferral codes: the provider was not called.
const (
	CodeChannelBusy   = "channel_busy"
	CodeSendUncertain = "send_uncertain"
)

// Send waits for the channel's limits, marks the item as being sent, and
// calls the provider.
func (g *Guard) Send(ctx context.Context, out inbox.Outgoing) (string, error) {
	release, err := g.acquire(ctx, out.Channel.ID)
	if err != nil {
		return "", err
	}
	defer release()
	if g.claims != nil {
		uncertain, err := g.claims.BeginSend(ctx, out.Item)
		switch {
		case inbox.ErrorCode(err) == inbox.CodeNotFound:
			return "", &inbox.SendError{Code: "settled", Message: "this message was already dealt with"}
		case inbox.ErrorCode(err) == inbox.CodeConflict:
			// A stale copy: its result is not recorded either (SendResult
			// ignores stale copies), and the current item keeps its schedule.
			return "", &inbox.SendError{Code: "stale", Message: "this attempt was already dealt with",
				Temporary: true, Deferred: true}
		case err != nil:
			return "", &inbox.SendError{Code: CodeChannelBusy, Message: "could not record the send; will retry",
				Temporary: true, Deferred: true, RetryAfter: time.Second}
		case uncertain && !g.idem:
			return "", &inbox.SendError{Code: CodeSendUncertain,
				Message: "the server stopped while handing this message to " + inbox.ProviderName(out.Channel.Type) +
					", so it may or may not have reached the customer; retry it if they did not get it"}
		}
	}
	return g.inner.Send(ctx, out)
}

// acquire takes an in-flight slot and a token for the channel, waiting
// up to MaxWait for a token. When the channel is saturated it returns a
// deferral, so the outbox's workers serve other channels meanwhile.
func (g *Guard) acquire(ctx context.Context, channelID string) (func(), error) {
	for {
		wait, ok := g.take(channelID)
		if ok {
			return func() { g.done(channelID) }, nil
		}
		if wait > g.wait {
			return nil, &inbox.SendError{Code: CodeChannelBusy, Message: "the channel is at its send limit; will send shortly",
				Temporary: true, Deferred: true, RetryAfter: wait}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &inbox.SendError{Code: CodeChannelBusy, Message: "the channel is at its send limit; will send shortly",
				Temporary: true, Deferred: true, RetryAfter: wait}
		case <-t.C:
		}
	}
}

// take claims a slot and a token, or says how long until one is free.
func (g *Guard) take(channelID string) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	b := g.channels[channelID]
	if b == nil {
		b = &bucket{tokens: float64(g.limits.Burst), last: now}
		g.channels[channelID] = b
	}
	if g.limits.Concurrency > 0 && b.inflight >= g.limits.Concurrency {
		// A slot frees when a send ends; sends take tens of ms.
		return 50 * time.Millisecond, false
	}
	if g.limits.PerSecond > 0 {
		if el := now.Sub(b.last); el > 0 {
			b.tokens = min(float64(g.limits.Burst), b.tokens+el.Seconds()*g.limits.PerSecond)
		}
		b.last = now
		if b.tokens < 1 {
			need := (1 - b.tokens) / g.limits.PerSecond
			return time.Duration(need * float64(time.Second)), false
		}
		b.tokens--
	}
	b.inflight++
	return 0, true
}

func (g *Guard) done(channelID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.channels[channelID]; b != nil {
		b.inflight--
	}
}
