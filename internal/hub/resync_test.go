package hub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

// growingLog is a tenant's event log that keeps growing while it is read,
// as the store does while a socket catches up during a burst of commits.
type growingLog struct {
	mu     sync.Mutex
	events []inbox.Event
	page   int
}

func (l *growingLog) append(n int) []inbox.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := uint64(len(l.events) + 1)
	evs := events("T", from, from+uint64(n)-1)
	l.events = append(l.events, evs...)
	return evs
}

func (l *growingLog) read(since uint64) []inbox.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	if since >= uint64(len(l.events)) {
		return nil
	}
	end := min(uint64(len(l.events)), since+uint64(l.page))
	return append([]inbox.Event(nil), l.events[since:end]...)
}

// A catch-up (the broker reported a possible loss) that runs while events
// keep arriving reads them from the store and also finds them queued: the
// queued copies must not count as a backlog, or the socket would be closed
// as slow although it keeps up. It gets every event once, in order.
func TestCatchUpDuringABurstKeepsTheSocket(t *testing.T) {
	log := &growingLog{page: 5}
	b := hub.NewLocalBroker()
	var h *hub.Hub
	var calls int
	fill := func(_ context.Context, tenant string, since uint64) ([]inbox.Event, error) {
		if tenant != "T" {
			return nil, fmt.Errorf("fill for tenant %s", tenant)
		}
		// While the page is read, three more events are committed and
		// published; the catch-up outpaces them after a while.
		if calls++; calls <= 12 {
			h.Publish(log.append(3))
		}
		return log.read(since), nil
	}
	h = newHub(t, hub.Options{Broker: b, Fill: fill, QueueSize: 8})
	s := newSink()
	subscribe(t, h, session("T", "a1", "k1"), s, 0)
	log.append(4) // committed, but lost on the way: never published here

	// What a networked broker does after a loss.
	if err := b.Publish("T", hub.Message{Kind: hub.KindResync}); err != nil {
		t.Fatal(err)
	}
	total := 4 + 12*3
	got := seqs(t, s.waitEvents(t, total))
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("seqs = %v, want 1..%d once each", got, total)
		}
	}
	s.mu.Lock()
	closes := s.closes
	s.mu.Unlock()
	if len(closes) != 0 {
		t.Fatalf("socket closed with %v during the catch-up", closes)
	}
	if st := h.Stats(); st.CatchUps != 1 || st.SlowCloses != 0 {
		t.Errorf("stats = %+v, want one catch-up and no slow close", st)
	}
	// Live delivery carries on after it, without duplicates.
	h.Publish(log.append(1))
	if got := seqs(t, s.waitEvents(t, total+1)); got[len(got)-1] != uint64(total+1) || len(got) != total+1 {
		t.Fatalf("after the catch-up: seqs = %v", got)
	}
}

// After a possible loss the hub asks the other processes who is online,
// whether or not it sends periodic heartbeats: presence messages may have
// been lost too. One process (no loss ever reported) never asks.
func TestResyncAsksWhoIsOnline(t *testing.T) {
	b := &recordingBroker{LocalBroker: hub.NewLocalBroker()}
	h := newHub(t, hub.Options{Broker: b})
	s := newSink()
	subscribe(t, h, session("A", "a1", "k1"), s, 0)
	asked := make(chan hub.Message, 1)
	cancel, err := b.Subscribe("A", func(m hub.Message) {
		if m.Kind == hub.KindHeartbeat {
			select {
			case asked <- m:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	b.mu.Lock()
	for _, k := range b.kinds {
		if k == hub.KindHeartbeat {
			t.Fatalf("a heartbeat was sent with no loss reported: %v", b.kinds)
		}
	}
	b.mu.Unlock()

	if err := b.LocalBroker.Publish("A", hub.Message{Kind: hub.KindResync}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-asked:
		if !m.Ask || fmt.Sprint(m.Agents) != "[a1]" || m.Node == "" {
			t.Errorf("heartbeat %+v, want an ask listing a1", m)
		}
	case <-time.After(wait):
		t.Fatal("no heartbeat asked who is online after a resync")
	}
}
