package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

const waitLimit = 10 * time.Second

// eventLog hands committed events to the test as they happen.
type eventLog struct {
	mu      sync.Mutex
	events  []inbox.Event
	changed chan struct{}
}

func (l *eventLog) Publish(events []inbox.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, events...)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *eventLog) waitConversation(t *testing.T, pred func(inbox.Conversation) bool) inbox.Conversation {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		l.mu.Lock()
		for _, e := range l.events {
			if e.Type != inbox.EventConversationUpdated {
				continue
			}
			var c inbox.Conversation
			if err := json.Unmarshal(e.Data, &c); err != nil {
				l.mu.Unlock()
				t.Fatalf("decode: %v", err)
			}
			if pred(c) {
				l.mu.Unlock()
				return c
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("timed out waiting for the conversation to reopen")
		}
	}
}

func TestSnoozesReopensConversation(t *testing.T) {
	log := &eventLog{changed: make(chan struct{})}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{Publisher: log})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer st.Close()
	svc, err := inbox.NewService(inbox.Config{Store: st})
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tenant, admin, _, _, err := svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	p := inbox.Principal{Tenant: tenant, Agent: admin}
	ch, err := svc.CreateChannel(ctx, p, inbox.ChannelDemo, "Demo", nil)
	if err != nil {
		t.Fatalf("create channel: %v", err)
	}
	got, err := svc.Receive(ctx, ch.ID, []inbox.Inbound{{ExternalID: "m1", ContactHandle: "+15550100", Text: "hi"}})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	convID := got[0].Message.ConversationID
	until := time.Now().Add(150 * time.Millisecond)
	c, err := svc.UpdateConversation(ctx, p, convID, inbox.Patch{SnoozedSet: true, SnoozedUntil: &until})
	if err != nil || c.Status != inbox.StatusSnoozed {
		t.Fatalf("snooze: status %q, err %v", c.Status, err)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := Snoozes(ctx, svc, 10*time.Millisecond, nil); err != nil {
			t.Errorf("Snoozes: %v", err)
		}
	}()

	woke := log.waitConversation(t, func(c inbox.Conversation) bool {
		return c.ID == convID && c.Status == inbox.StatusOpen
	})
	if woke.SnoozedUntil != nil {
		t.Errorf("snoozed_until = %v after waking, want null", woke.SnoozedUntil)
	}
	if woke.UpdatedAt.Before(until.Truncate(time.Microsecond)) {
		t.Errorf("woke at %v, before the snooze ended at %v", woke.UpdatedAt, until)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Snoozes did not return after cancel")
	}
}

func TestEveryKeepsGoingAfterErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan int, 10)
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = Every(ctx, "test", time.Millisecond, nil, func(context.Context) error {
			n++
			calls <- n
			if n < 3 {
				return errors.New("disk busy")
			}
			cancel()
			return nil
		})
	}()
	for want := 1; want <= 3; want++ {
		select {
		case got := <-calls:
			if got != want {
				t.Fatalf("call %d, want %d", got, want)
			}
		case <-time.After(waitLimit):
			t.Fatalf("call %d never came", want)
		}
	}
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Every did not return after cancel")
	}
}
