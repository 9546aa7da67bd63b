package push

import (
	"sync/atomic"

	"github.com/onebox/onebox/internal/inbox"
)

// Feed carries committed events from the store to the Dispatcher. The store
// calls Publish on its commit path, so Publish only filters by type and hands
// the event over without waiting: when the Dispatcher is that far behind,
// the event is dropped and counted (a missed notification, never a slower
// commit); the app still shows the message as unread when opened.
type Feed struct {
	c       chan inbox.Event
	dropped atomic.Uint64
}

var _ inbox.Publisher = (*Feed)(nil)

// NewFeed makes a feed that holds up to size events (default 4096).
func NewFeed(size int) *Feed {
	if size <= 0 {
		size = 4096
	}
	return &Feed{c: make(chan inbox.Event, size)}
}

// Publish queues the events that may call for a push.
func (f *Feed) Publish(events []inbox.Event) {
	for _, ev := range events {
		if ev.Type != inbox.EventMessageCreated {
			continue
		}
		select {
		case f.c <- ev:
		default:
			f.dropped.Add(1)
		}
	}
}

// Dropped counts events dropped because the queue was full.
func (f *Feed) Dropped() uint64 { return f.dropped.Load() }
