// Package outbox hands agents' replies to their channels.
//
// Replies are written to the store together with an outbox entry, so the
// worker needs no state of its own: it asks the service what is due, sends
// it, and records the channel's answer. Anything not yet answered when the
// process stops is still in the store and is sent after a restart.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Defaults for Config's zero values.
const (
	DefaultConcurrency  = 8
	DefaultSendTimeout  = 30 * time.Second
	DefaultPollInterval = 30 * time.Second
)

// Codes the worker itself puts on a failed message; channels add their own.
const (
	CodeChannelDeleted     = "channel_deleted"
	CodeChannelUnavailable = "channel_unavailable"
	CodeChannelError       = "channel_error"
	CodeSendTimeout        = "send_timeout"
)

// Config wires a Worker. Service is required.
type Config struct {
	Service *inbox.Service
	// Senders maps a channel type ("whatsapp", "demo", ...) to what sends
	// on it. A type without a sender fails its messages, so a reply never
	// sits pending for a channel this server cannot reach.
	Senders map[string]inbox.Sender
	Logger  *slog.Logger
	// Concurrency bounds simultaneous sends, so one slow provider cannot
	// tie up unbounded goroutines and connections.
	Concurrency int
	// SendTimeout bounds one Send call.
	SendTimeout time.Duration
	// PollInterval is a safety net: the worker also looks for due work this
	// often even when nobody woke it (a wake lost in a crash, a clock jump).
	PollInterval time.Duration
	// Now is the clock used to decide what is due; tests replace it.
	Now func() time.Time
	// OnResult, when set, is called after each send's outcome has been
	// recorded (err is what the sender returned, nil on success). It is
	// meant for metrics and tests and must not block.
	OnResult func(item inbox.OutboxItem, err error)
}

// Worker is the single consumer of the outbox in this process.
type Worker struct {
	svc      *inbox.Service
	senders  map[string]inbox.Sender
	log      *slog.Logger
	conc     int
	timeout  time.Duration
	poll     time.Duration
	now      func() time.Time
	onResult func(inbox.OutboxItem, error)
	wake     chan struct{}
}

// New fills in cfg's defaults. A missing Service is reported by Run, so
// wiring code can build the worker before the service exists.
func New(cfg Config) *Worker {
	w := &Worker{
		svc:      cfg.Service,
		senders:  cfg.Senders,
		log:      cfg.Logger,
		conc:     cfg.Concurrency,
		timeout:  cfg.SendTimeout,
		poll:     cfg.PollInterval,
		now:      cfg.Now,
		onResult: cfg.OnResult,
		wake:     make(chan struct{}, 1),
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.conc <= 0 {
		w.conc = DefaultConcurrency
	}
	if w.timeout <= 0 {
		w.timeout = DefaultSendTimeout
	}
	if w.poll <= 0 {
		w.poll = DefaultPollInterval
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.onResult == nil {
		w.onResult = func(inbox.OutboxItem, error) {}
	}
	return w
}

// Wake tells the worker there may be new work. It never blocks, and wakes
// that arrive while one is pending collapse into one.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// finished is what a send goroutine reports back to the loop.
type finished struct{ item inbox.OutboxItem }

// busy is what is being sent right now, owned by Run's goroutine. An item
// is never sent twice at once, and a conversation has at most one send in
// flight, so its replies reach the customer in the order they were written
// (Due lists them oldest first).
type busy struct {
	items map[string]bool
	convs map[string]bool
}

func (b busy) add(o inbox.OutboxItem) {
	b.items[key(o)] = true
	b.convs[convKey(o)] = true
}

func (b busy) remove(o inbox.OutboxItem) {
	delete(b.items, key(o))
	delete(b.convs, convKey(o))
}

func (b busy) has(o inbox.OutboxItem) bool { return b.items[key(o)] || b.convs[convKey(o)] }

func key(o inbox.OutboxItem) string     { return o.TenantID + "/" + o.MessageID }
func convKey(o inbox.OutboxItem) string { return o.TenantID + "/" + o.ConversationID }

// dueWindow is how many due items are looked at per free slot: items of
// conversations that already have a send in flight are skipped, and the
// window lets other conversations' items fill the free slots meanwhile.
const dueWindow = 4

// Run sends due messages until ctx ends, then waits for sends already
// started to finish and be recorded before returning nil. Sends are not
// cut short by ctx: an interrupted provider call leaves us not knowing
// whether the customer got the message, which would mean sending it twice.
func (w *Worker) Run(ctx context.Context) error {
	if w.svc == nil {
		return errors.New("outbox: a service is required")
	}
	inflight := busy{items: make(map[string]bool, w.conc), convs: make(map[string]bool, w.conc)}
	done := make(chan finished, w.conc)
	timer := time.NewTimer(0) // look at once: work may be left from before a restart
	defer timer.Stop()
	errWait := time.Duration(0)

	for {
		select {
		case <-ctx.Done():
			for len(inflight.items) > 0 {
				f := <-done
				inflight.remove(f.item)
			}
			return nil
		case f := <-done:
			inflight.remove(f.item)
		case <-w.wake:
		case <-timer.C:
		}
		// Collect every other finished send before polling, so a burst of
		// completions costs one Due, not one each.
	drain:
		for {
			select {
			case f := <-done:
				inflight.remove(f.item)
			default:
				break drain
			}
		}
		if len(inflight.items) >= w.conc {
			continue // a finishing send will bring us back
		}

		now := w.now()
		// Items in flight are still in the outbox, so they are part of
		// what Due returns; the window is sized past them.
		due, next, err := w.svc.Due(ctx, now, len(inflight.items)+dueWindow*(w.conc-len(inflight.items)))
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			errWait = min(max(2*errWait, time.Second), w.poll)
			w.log.Error("outbox: listing due messages", "err", err, "retry_in", errWait)
			timer.Reset(errWait)
			continue
		}
		errWait = 0
		for _, g := range due {
			if len(inflight.items) >= w.conc {
				break
			}
			if inflight.has(g.Item) {
				continue
			}
			inflight.add(g.Item)
			go w.send(ctx, g, done)
		}
		timer.Reset(w.waitFor(now, next))
	}
}

// waitFor is how long to sleep when nothing else happens. A next at or
// before now means due work is waiting for a free slot or for its
// conversation's send, and a finishing send will wake the loop; polling
// for it would only spin.
func (w *Worker) waitFor(now, next time.Time) time.Duration {
	if next.IsZero() || !next.After(now) {
		return w.poll
	}
	return min(next.Sub(now), w.poll)
}

// send delivers one item and records the outcome. It uses a context that
// survives the worker's shutdown (see Run) but is bounded by SendTimeout.
func (w *Worker) send(ctx context.Context, g inbox.Outgoing, done chan<- finished) {
	defer func() { done <- finished{item: g.Item} }()
	base := context.WithoutCancel(ctx)

	externalID, err := w.deliver(base, g)
	log := w.log.With("tenant", g.Item.TenantID, "message", g.Item.MessageID,
		"channel", g.Item.ChannelID, "attempt", g.Item.Attempts+1)
	var se *inbox.SendError
	switch {
	case err == nil:
		log.Debug("outbox: sent", "external_id", externalID)
	case errors.As(err, &se) && !se.Temporary:
		log.Warn("outbox: send failed for good", "code", se.Code, "err", se.Message)
	default:
		log.Info("outbox: send failed", "temporary", true, "err", err)
	}

	rctx, cancel := context.WithTimeout(base, w.timeout)
	defer cancel()
	if rerr := w.svc.SendResult(rctx, g.Item, externalID, err); rerr != nil {
		// The item stays in the outbox and is tried again; a successful
		// send may then be repeated, which senders are told to expect.
		log.Error("outbox: recording send result", "err", rerr, "send_err", err)
		return
	}
	w.onResult(g.Item, err)
}

// deliver picks the sender and calls it, turning the ways a send can go
// wrong outside the sender into SendErrors the agent can understand.
func (w *Worker) deliver(ctx context.Context, g inbox.Outgoing) (externalID string, err error) {
	if g.Channel.ID == "" {
		return "", &inbox.SendError{Code: CodeChannelDeleted,
			Message: "the channel this conversation came through has been deleted"}
	}
	s, ok := w.senders[g.Channel.Type]
	if !ok || s == nil {
		return "", &inbox.SendError{Code: CodeChannelUnavailable,
			Message: fmt.Sprintf("this server cannot send on %q channels", g.Channel.Type)}
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("outbox: sender panicked", "channel_type", g.Channel.Type,
				"panic", p, "stack", string(debug.Stack()))
			externalID, err = "", &inbox.SendError{Code: CodeChannelError,
				Message: "the channel failed unexpectedly; will retry", Temporary: true}
		}
	}()
	externalID, err = s.Send(ctx, g)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		var se *inbox.SendError
		if !errors.As(err, &se) {
			err = &inbox.SendError{Code: CodeSendTimeout,
				Message: fmt.Sprintf("the channel did not answer within %s; will retry", w.timeout), Temporary: true}
		}
	}
	return externalID, err
}
