package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/outbox"
)

const waitLimit = 10 * time.Second

// eventLog collects committed events and lets tests wait for them.
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

// waitMessages waits until at least n message.created events match pred,
// and returns those messages.
func (l *eventLog) waitMessages(t *testing.T, what string, n int, pred func(inbox.Message) bool) []inbox.Message {
	t.Helper()
	return l.wait(t, what, n, inbox.EventMessageCreated, pred)
}

func (l *eventLog) wait(t *testing.T, what string, n int, typ string, pred func(inbox.Message) bool) []inbox.Message {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		var got []inbox.Message
		l.mu.Lock()
		for _, e := range l.events {
			if e.Type != typ {
				continue
			}
			var m inbox.Message
			if err := json.Unmarshal(e.Data, &m); err != nil {
				l.mu.Unlock()
				t.Fatalf("decode %s: %v", e.Type, err)
			}
			if pred(m) {
				got = append(got, m)
			}
		}
		ch := l.changed
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s (saw %d of %d)", what, len(got), n)
		}
	}
}

func (l *eventLog) conversations(t *testing.T) []inbox.Conversation {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []inbox.Conversation
	for _, e := range l.events {
		if e.Type != inbox.EventConversationCreated {
			continue
		}
		var c inbox.Conversation
		if err := json.Unmarshal(e.Data, &c); err != nil {
			t.Fatalf("decode conversation: %v", err)
		}
		out = append(out, c)
	}
	return out
}

type env struct {
	store  *bolt.Store
	svc    *inbox.Service
	events *eventLog
	p      inbox.Principal
	demo   inbox.Channel
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{events: &eventLog{changed: make(chan struct{})}}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{Publisher: e.events})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	if e.svc, err = inbox.NewService(inbox.Config{Store: st}); err != nil {
		t.Fatalf("new service: %v", err)
	}
	ctx := context.Background()
	tenant, admin, _, _, err := e.svc.CreateTenant(ctx, "Demo shop")
	if err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	e.p = inbox.Principal{Tenant: tenant, Agent: admin}
	if e.demo, err = e.svc.CreateChannel(ctx, e.p, inbox.ChannelDemo, "Demo", nil); err != nil {
		t.Fatalf("create channel: %v", err)
	}
	return e
}

// run starts fn in a goroutine and returns a function that waits for it.
func run(t *testing.T, name string, fn func() error) (wait func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return func() {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("%s did not stop", name)
		}
	}
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func TestScriptIsVaried(t *testing.T) {
	if len(customers) < 12 {
		t.Errorf("%d customers, want at least 12", len(customers))
	}
	handles := map[string]bool{}
	for _, c := range customers {
		if c.Name == "" || c.Handle == "" || handles[c.Handle] {
			t.Errorf("customer %+v: empty or duplicate", c)
		}
		handles[c.Handle] = true
	}
	lines := 0
	for _, tp := range topics {
		if len(tp) == 0 {
			t.Error("empty topic")
		}
		lines += len(tp)
	}
	if lines < 40 {
		t.Errorf("%d customer lines, want at least 40", lines)
	}
}

func TestSimulatorIsDeterministicWithSeed(t *testing.T) {
	sequence := func() []string {
		s := NewSimulator(SimulatorConfig{Rand: seeded(42)})
		var out []string
		for i := range 200 {
			c, text := s.next(fmt.Sprintf("ch%d", i%2))
			if text == "" || strings.Contains(text, "{") {
				t.Fatalf("line %q is empty or has an unfilled placeholder", text)
			}
			out = append(out, c.Handle+": "+text)
		}
		return out
	}
	a, b := sequence(), sequence()
	if !slices.Equal(a, b) {
		t.Fatal("two simulators with the same seed wrote different messages")
	}
	// Follow-ups happen: some customer writes the second line of a topic.
	follow := 0
	for _, tp := range topics {
		for _, l := range tp[1:] {
			for _, got := range a {
				if strings.HasSuffix(got, ": "+l) {
					follow++
				}
			}
		}
	}
	if follow == 0 {
		t.Error("no follow-up lines in 200 messages")
	}
}

func TestSimulatorWritesToDemoChannels(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	sim := NewSimulator(SimulatorConfig{Service: e.svc, Interval: 5 * time.Millisecond, Jitter: 5 * time.Millisecond, Rand: seeded(7)})
	stop := run(t, "simulator", func() error { return sim.Run(ctx) })

	msgs := e.events.waitMessages(t, "simulated customer messages", 8, func(m inbox.Message) bool {
		return m.Direction == inbox.DirectionIn
	})
	cancel()
	stop()

	ids := map[string]bool{}
	for _, m := range msgs {
		if m.Status != inbox.MsgReceived || m.Text == "" || !strings.HasPrefix(m.ExternalID, "demo-in-") {
			t.Errorf("message %+v: want received text with a demo external id", m)
		}
		if ids[m.ExternalID] {
			t.Errorf("external id %s used twice", m.ExternalID)
		}
		ids[m.ExternalID] = true
	}
	convs := e.events.conversations(t)
	if len(convs) < 2 {
		t.Errorf("%d conversations, want several in flight", len(convs))
	}
	for _, c := range convs {
		if c.Channel.ID != e.demo.ID {
			t.Errorf("conversation on channel %s, want the demo channel %s", c.Channel.ID, e.demo.ID)
		}
	}
}

func TestSenderReportsDeliveredThenReadAndCustomerAnswers(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sender := NewSender(SenderConfig{
		Service:     e.svc,
		Delivered:   Delay{10 * time.Millisecond, 20 * time.Millisecond},
		Read:        Delay{30 * time.Millisecond, 50 * time.Millisecond},
		Reply:       Delay{10 * time.Millisecond, 20 * time.Millisecond},
		ReplyChance: 1,
		Rand:        seeded(1),
	})
	w := outbox.New(outbox.Config{Service: e.svc, Senders: map[string]inbox.Sender{inbox.ChannelDemo: sender}})
	e.svc.SetOnOutbound(w.Wake)
	stopSender := run(t, "sender", func() error { return sender.Run(ctx) })
	stopWorker := run(t, "worker", func() error { return w.Run(ctx) })
	defer func() { cancel(); stopSender(); stopWorker() }()

	got, err := e.svc.Receive(ctx, e.demo.ID, []inbox.Inbound{{ExternalID: "x1", ContactHandle: "+4915112345678", ContactName: "Lena Schmidt", Text: "Where is my parcel?"}})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	conv := got[0].Message.ConversationID
	reply, _, err := e.svc.SendMessage(ctx, e.p, conv, inbox.Draft{ClientID: uuid.NewString(), Text: "It ships today!"})
	if err != nil {
		t.Fatalf("send: %v", err)
	}

	var statuses []inbox.MessageStatus
	updates := e.events.wait(t, "the reply to be read", 1, inbox.EventMessageUpdated, func(m inbox.Message) bool {
		return m.ID == reply.ID && m.Status == inbox.MsgRead
	})
	for _, m := range e.events.wait(t, "updates", 1, inbox.EventMessageUpdated, func(m inbox.Message) bool { return m.ID == reply.ID }) {
		statuses = append(statuses, m.Status)
	}
	want := []inbox.MessageStatus{inbox.MsgSent, inbox.MsgDelivered, inbox.MsgRead}
	if !slices.Equal(statuses, want) {
		t.Errorf("statuses = %v, want %v", statuses, want)
	}
	if ext := updates[0].ExternalID; !strings.HasPrefix(ext, "demo-") {
		t.Errorf("external id = %q, want demo-<uuid>", ext)
	}

	answers := e.events.waitMessages(t, "the customer's answer", 2, func(m inbox.Message) bool {
		return m.ConversationID == conv && m.Direction == inbox.DirectionIn
	})
	if !slices.Contains(replies, answers[1].Text) {
		t.Errorf("answer %q is not one of the reply lines", answers[1].Text)
	}
}

func TestStoppingLeavesNoGoroutines(t *testing.T) {
	e := newEnv(t)
	baseline := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	sender := NewSender(SenderConfig{
		Service:     e.svc,
		Delivered:   Delay{5 * time.Millisecond, 10 * time.Millisecond},
		Read:        Delay{10 * time.Millisecond, 20 * time.Millisecond},
		Reply:       Delay{time.Hour, time.Hour}, // still scheduled when we stop
		ReplyChance: 1,
	})
	sim := NewSimulator(SimulatorConfig{Service: e.svc, Interval: 5 * time.Millisecond, Jitter: -1})
	w := outbox.New(outbox.Config{Service: e.svc, Senders: map[string]inbox.Sender{inbox.ChannelDemo: sender}})
	e.svc.SetOnOutbound(w.Wake)
	stops := []func(){
		run(t, "sender", func() error { return sender.Run(ctx) }),
		run(t, "simulator", func() error { return sim.Run(ctx) }),
		run(t, "worker", func() error { return w.Run(ctx) }),
	}

	in := e.events.waitMessages(t, "a customer message", 1, func(m inbox.Message) bool { return m.Direction == inbox.DirectionIn })
	reply, _, err := e.svc.SendMessage(ctx, e.p, in[0].ConversationID, inbox.Draft{ClientID: uuid.NewString(), Text: "Hi!"})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	e.events.wait(t, "the reply to be read", 1, inbox.EventMessageUpdated, func(m inbox.Message) bool {
		return m.ID == reply.ID && m.Status == inbox.MsgRead
	})

	cancel()
	for _, stop := range stops {
		stop()
	}
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after stopping, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}
