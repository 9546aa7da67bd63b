package channeltest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/inbox"
)

// Events keeps every committed event and lets a test wait for one.
type Events struct {
	mu      sync.Mutex
	events  []inbox.Event
	changed chan struct{}
}

func newEvents() *Events { return &Events{changed: make(chan struct{})} }

// Publish is the store's publisher.
func (l *Events) Publish(evs []inbox.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, evs...)
	close(l.changed)
	l.changed = make(chan struct{})
}

// Wait returns the first event (from the start) matching pred, failing
// the test after Wait.
func (l *Events) Wait(t testing.TB, what string, pred func(inbox.Event) bool) inbox.Event {
	t.Helper()
	deadline := time.NewTimer(Wait)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, e := range l.events {
			if pred(e) {
				l.mu.Unlock()
				return e
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// MessageStatus waits until message id reaches status and returns it.
func (l *Events) MessageStatus(t testing.TB, id string, st inbox.MessageStatus) inbox.Message {
	t.Helper()
	var m inbox.Message
	l.Wait(t, fmt.Sprintf("message %s to become %s", id, st), func(e inbox.Event) bool {
		if e.Type != inbox.EventMessageUpdated && e.Type != inbox.EventMessageCreated {
			return false
		}
		var got inbox.Message
		if json.Unmarshal(e.Data, &got) != nil || got.ID != id || got.Status != st {
			return false
		}
		m = got
		return true
	})
	return m
}

// Count is how many events match pred so far.
func (l *Events) Count(pred func(inbox.Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if pred(e) {
			n++
		}
	}
	return n
}

// IsMessage matches message events of type typ about message id.
func IsMessage(typ, id string) func(inbox.Event) bool {
	return func(e inbox.Event) bool {
		if e.Type != typ {
			return false
		}
		var m inbox.Message
		return json.Unmarshal(e.Data, &m) == nil && m.ID == id
	}
}

func newUUID() string { return uuid.NewString() }
