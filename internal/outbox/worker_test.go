package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/inbox"
)

const waitLimit = 10 * time.Second

// eventLog collects committed events and lets tests wait for one.
type eventLog struct {
	mu      sync.Mutex
	events  []inbox.Event
	changed chan struct{}
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{})} }

func (l *eventLog) Publish(events []inbox.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, events...)
	close(l.changed)
	l.changed = make(chan struct{})
}

// wait returns the first event (from the start of the log) matching pred.
func (l *eventLog) wait(t *testing.T, what string, pred func(inbox.Event) bool) inbox.Event {
	t.Helper()
	deadline := time.After(waitLimit)
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
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// messageStatus waits for a message.updated event putting id in status.
func (l *eventLog) messageStatus(t *testing.T, id string, status inbox.MessageStatus) inbox.Message {
	t.Helper()
	var m inbox.Message
	l.wait(t, fmt.Sprintf("message %s to become %s", id, status), func(e inbox.Event) bool {
		if e.Type != inbox.EventMessageUpdated {
			return false
		}
		var got inbox.Message
		if err := json.Unmarshal(e.Data, &got); err != nil {
			t.Fatalf("decode event: %v", err)
		}
		if got.ID == id && got.Status == status {
			m = got
			return true
		}
		return false
	})
	return m
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeSender records every call. behave decides the outcome of the n-th
// (1-based) send of a message; nil means success.
type fakeSender struct {
	mu        sync.Mutex
	calls     map[string]int
	active    map[string]bool
	running   int
	maxActive int
	overlap   bool
	behave    func(g inbox.Outgoing, n int) (string, error)
	called    chan string
}

func newFakeSender(behave func(g inbox.Outgoing, n int) (string, error)) *fakeSender {
	return &fakeSender{calls: map[string]int{}, active: map[string]bool{}, behave: behave, called: make(chan string, 1000)}
}

func (f *fakeSender) Send(ctx context.Context, g inbox.Outgoing) (string, error) {
	id := g.Message.ID
	f.mu.Lock()
	f.calls[id]++
	n := f.calls[id]
	if f.active[id] {
		f.overlap = true
	}
	f.active[id] = true
	f.running++
	f.maxActive = max(f.maxActive, f.running)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.active, id)
		f.running--
		f.mu.Unlock()
		f.called <- id
	}()
	if f.behave != nil {
		return f.behave(g, n)
	}
	return "ext-" + id, nil
}

func (f *fakeSender) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

type env struct {
	path   string // the bbolt file
	dsn    string // or the PostgreSQL schema, under TestPostgres
	store  inbox.Store
	svc    *inbox.Service
	events *eventLog
	clock  *fakeClock
	p      inbox.Principal
	ch     inbox.Channel
	conv   string
}

// newEnv opens a real store with a tenant, a demo channel and one
// conversation started by a customer.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{path: filepath.Join(t.TempDir(), "onebox.db"), clock: &fakeClock{t: time.Now().UTC()}}
	e.open(t)
	ctx := context.Background()
	tenant, admin, _, _, err := e.svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	e.p = inbox.Principal{Tenant: tenant, Agent: admin}
	if e.ch, err = e.svc.CreateChannel(ctx, e.p, inbox.ChannelDemo, "Demo", nil); err != nil {
		t.Fatalf("create channel: %v", err)
	}
	e.conv = e.newConversation(t, "+4915100000001")
	return e
}

func (e *env) open(t *testing.T) {
	t.Helper()
	e.events = newEventLog()
	st, err := openStore(t, e, e.events)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.store = st
	t.Cleanup(func() { st.Close() })
	if e.svc, err = inbox.NewService(inbox.Config{Store: st, Now: e.clock.Now}); err != nil {
		t.Fatalf("new service: %v", err)
	}
}

func (e *env) newConversation(t *testing.T, handle string) string {
	t.Helper()
	got, err := e.svc.Receive(context.Background(), e.ch.ID, []inbox.Inbound{{
		ExternalID: "in-" + handle, ContactHandle: handle, ContactName: "Kim " + handle, Text: "Hello?",
	}})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return got[0].Message.ConversationID
}

func (e *env) reply(t *testing.T, conv, text string) inbox.Message {
	t.Helper()
	m, _, err := e.svc.SendMessage(context.Background(), e.p, conv, inbox.Draft{ClientID: uuid.NewString(), Text: text})
	if err != nil {
		t.Fatalf("send message: %v", err)
	}
	return m
}

func (e *env) outboxItem(t *testing.T, msgID string) (inbox.OutboxItem, bool) {
	t.Helper()
	var item inbox.OutboxItem
	err := e.store.View(context.Background(), func(tx inbox.Tx) error {
		return tx.Get(inbox.Collection{Name: inbox.CollOutbox}, e.p.Tenant.ID+"/"+msgID, &item)
	})
	if errors.Is(err, inbox.ErrNotFound) {
		return item, false
	}
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	return item, true
}

// start runs a worker until the test ends, waiting for it to stop.
func (e *env) start(t *testing.T, cfg Config) *Worker {
	t.Helper()
	cfg.Service = e.svc
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	w := New(cfg)
	e.svc.SetOnOutbound(w.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("worker did not stop")
		}
	})
	return w
}

// results turns OnResult into a channel tests can wait on.
func results() (func(inbox.OutboxItem, error), chan error) {
	ch := make(chan error, 1000)
	return func(_ inbox.OutboxItem, err error) { ch <- err }, ch
}

func waitResult(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for a send result")
		return nil
	}
}

func TestSendsOnceAndRecordsExternalID(t *testing.T) {
	e := newEnv(t)
	f := newFakeSender(nil)
	onResult, res := results()
	e.start(t, Config{Senders: map[string]inbox.Sender{inbox.ChannelDemo: f}, OnResult: onResult})

	m := e.reply(t, e.conv, "Your order ships today.")
	got := e.events.messageStatus(t, m.ID, inbox.MsgSent)
	if got.ExternalID != "ext-"+m.ID {
		t.Errorf("external id = %q, want %q", got.ExternalID, "ext-"+m.ID)
	}
	if err := waitResult(t, res); err != nil {
		t.Errorf("result err = %v, want nil", err)
	}
	if n := f.count(m.ID); n != 1 {
		t.Errorf("sent %d times, want 1", n)
	}
	if _, ok := e.outboxItem(t, m.ID); ok {
		t.Error("outbox item still present after a successful send")
	}
}

func TestTemporaryErrorIsRetriedAfterBackoff(t *testing.T) {
	e := newEnv(t)
	f := newFakeSender(func(g inbox.Outgoing, n int) (string, error) {
		if n == 1 {
			return "", &inbox.SendError{Code: "rate_limited", Message: "slow down", Temporary: true}
		}
		return "ext-ok", nil
	})
	onResult, res := results()
	w := e.start(t, Config{Senders: map[string]inbox.Sender{inbox.ChannelDemo: f}, OnResult: onResult})

	m := e.reply(t, e.conv, "Let me check.")
	if err := waitResult(t, res); err == nil {
		t.Fatal("first result err = nil, want the temporary error")
	}
	item, ok := e.outboxItem(t, m.ID)
	if !ok {
		t.Fatal("outbox item gone after a temporary error")
	}
	// Retries are jittered within the upper half of the backoff.
	latest := e.clock.Now().Add(inbox.Backoff(1, 0))
	earliest := e.clock.Now().Add(inbox.Backoff(1, 0) / 2)
	if item.Attempts != 1 || item.NextAt.Before(earliest) || item.NextAt.After(latest) {
		t.Errorf("item attempts=%d next_at=%v, want 1 and between %v and %v", item.Attempts, item.NextAt, earliest, latest)
	}
	wantNext := item.NextAt

	// Not due yet: a wake must not send it again.
	w.Wake()
	due, next, err := e.svc.Due(context.Background(), e.clock.Now(), 10)
	if err != nil || len(due) != 0 || !next.Equal(wantNext) {
		t.Fatalf("Due before backoff = %d items, next %v, err %v; want none, %v", len(due), next, err, wantNext)
	}

	e.clock.Advance(inbox.Backoff(1, 0))
	w.Wake()
	got := e.events.messageStatus(t, m.ID, inbox.MsgSent)
	if got.ExternalID != "ext-ok" {
		t.Errorf("external id = %q, want ext-ok", got.ExternalID)
	}
	if n := f.count(m.ID); n != 2 {
		t.Errorf("sent %d times, want 2", n)
	}
}

func TestPermanentErrorFailsMessage(t *testing.T) {
	e := newEnv(t)
	f := newFakeSender(func(inbox.Outgoing, int) (string, error) {
		return "", &inbox.SendError{Code: "invalid_recipient", Message: "number is not on WhatsApp"}
	})
	e.start(t, Config{Senders: map[string]inbox.Sender{inbox.ChannelDemo: f}})

	m := e.reply(t, e.conv, "Hi!")
	got := e.events.messageStatus(t, m.ID, inbox.MsgFailed)
	if got.Error == nil || got.Error.Code != "invalid_recipient" {
		t.Errorf("error = %+v, want code invalid_recipient", got.Error)
	}
	if n := f.count(m.ID); n != 1 {
		t.Errorf("sent %d times, want 1", n)
	}
}

func TestPanickingSenderIsRetried(t *testing.T) {
	e := newEnv(t)
	f := newFakeSender(func(g inbox.Outgoing, n int) (string, error) {
		if n == 1 {
			panic("boom")
		}
		return "ext-after-panic", nil
	})
	onResult, res := results()
	w := e.start(t, Config{Senders: map[string]inbox.Sender{inbox.ChannelDemo: f}, OnResult: onResult})

	m := e.reply(t, e.conv, "Hi!")
	err := waitResult(t, res)
	var se *inbox.SendError
	if !errors.As(err, &se) || se.Code != CodeChannelError || !se.Temporary {
		t.Fatalf("first result = %v, want a temporary %s", err, CodeChannelError)
	}
	e.clock.Advance(inbox.Backoff(1, 0))
	w.Wake()
	e.events.messageStatus(t, m.ID, inbox.MsgSent)
}

func TestSendTimeoutIsTemporary(t *testing.T) {
	e := newEnv(t)
	slow := senderFunc(func(ctx context.Context, g inbox.Outgoing) (string, error) {
		<-ctx.Done()
		return "", fmt.Errorf("post: %w", ctx.Err())
	})
	onResult, res := results()
	e.start(t, Config{Senders: map[string]inbox.Sender{inbox.ChannelDemo: slow}, SendTimeout: 20 * time.Millisecond, OnResult: onResult})

	m := e.reply(t, e.conv, "Hi!")
	err := waitResult(t, res)
	var se *inbox.SendError
	if !errors.As(err, &se) || se.Code != CodeSendTimeout || !se.Temporary {
		t.Fatalf("result = %v, want a temporary %s", err, CodeSendTimeout)
	}
	if item, ok := e.outboxItem(t, m.ID); !ok || item.Attempts != 1 {
		t.Errorf("outbox item = %+v (present %v), want attempts 1", item, ok)
	}
}

type senderFunc func(ctx context.Context, g inbox.Outgoing) (string, error)

func (f senderFunc) Send(ctx context.Context, g inbox.Outgoing) (string, error) { return f(ctx, g) }

func TestPendingReplyIsSentAfterRestart(t *testing.T) {
	e := newEnv(t)
	m := e.reply(t, e.conv, "Written before the crash.")
	if err := e.store.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	e.open(t)
	f := newFakeSender(nil)
	onResult, res := results()
	e.start(t, Config{Senders: map[string]inbox.Sender{inbox.ChannelDemo: f}, OnResult: onResult})
	e.events.messageStatus(t, m.ID, inbox.MsgSent)
	waitResult(t, res)
	if n := f.count(m.ID); n != 1 {
		t.Errorf("sent %d times, want 1", n)
	}
	if due, _, err := e.svc.Due(context.Background(), e.clock.Now(), 10); err != nil || len(due) != 0 {
		t.Errorf("Due after send = %d items, err %v; want none", len(due), err)
	}
}

func TestDeletedChannelFailsMessage(t *testing.T) {
	e := newEnv(t)
	m := e.reply(t, e.conv, "Hello")
	if err := e.svc.DeleteChannel(context.Background(), e.p, e.ch.ID); err != nil {
		t.Fatalf("delete channel: %v", err)
	}
	f := newFakeSender(nil)
	e.start(t, Config{Senders: map[string]inbox.Sender{inbox.ChannelDemo: f}})

	got := e.events.messageStatus(t, m.ID, inbox.MsgFailed)
	if got.Error == nil || got.Error.Code != CodeChannelDeleted {
		t.Errorf("error = %+v, want code %s", got.Error, CodeChannelDeleted)
	}
	if n := f.count(m.ID); n != 0 {
		t.Errorf("sender called %d times for a deleted channel", n)
	}
}

func TestChannelTypeWithoutSenderFailsMessage(t *testing.T) {
	e := newEnv(t)
	e.start(t, Config{Senders: map[string]inbox.Sender{}})
	m := e.reply(t, e.conv, "Hello")
	got := e.events.messageStatus(t, m.ID, inbox.MsgFailed)
	if got.Error == nil || got.Error.Code != CodeChannelUnavailable {
		t.Errorf("error = %+v, want code %s", got.Error, CodeChannelUnavailable)
	}
}

func TestManyMessagesEachSentOnceWithinConcurrency(t *testing.T) {
	e := newEnv(t)
	const conc, convs, perConv = 4, 6, 10
	conv := []string{e.conv}
	for c := 1; c < convs; c++ {
		conv = append(conv, e.newConversation(t, fmt.Sprintf("+4915100000%03d", c+10)))
	}
	var ids []string
	for i := range perConv {
		for c := range convs {
			ids = append(ids, e.reply(t, conv[c], fmt.Sprintf("reply %d/%d", c, i)).ID)
		}
	}

	// The sender holds each call until several are running, so sends
	// really overlap; it must never see more than conc at once.
	gate := make(chan struct{})
	var once sync.Once
	var f *fakeSender
	f = newFakeSender(func(g inbox.Outgoing, n int) (string, error) {
		f.mu.Lock()
		full := f.running >= conc
		f.mu.Unlock()
		if full {
			once.Do(func() { close(gate) })
		}
		select {
		case <-gate:
		case <-time.After(waitLimit):
		}
		return "ext-" + g.Message.ID, nil
	})
	e.start(t, Config{Senders: map[string]inbox.Sender{inbox.ChannelDemo: f}, Concurrency: conc})
	for _, id := range ids {
		e.events.messageStatus(t, id, inbox.MsgSent)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.calls[id] != 1 {
			t.Errorf("message %s sent %d times, want 1", id, f.calls[id])
		}
	}
	if f.maxActive > conc {
		t.Errorf("%d sends ran at once, want at most %d", f.maxActive, conc)
	}
	if f.maxActive < conc {
		t.Errorf("at most %d sends ran at once, want %d", f.maxActive, conc)
	}
	if f.overlap {
		t.Error("a message was sent twice concurrently")
	}
}

func TestRepliesOfOneConversationGoOutInOrder(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := range 10 {
		want = append(want, e.reply(t, e.conv, fmt.Sprintf("part %d", i)).ID)
	}
	var mu sync.Mutex
	var got []string
	running := 0
	overlapped := false
	s := senderFunc(func(ctx context.Context, g inbox.Outgoing) (string, error) {
		mu.Lock()
		running++
		overlapped = overlapped || running > 1
		got = append(got, g.Message.ID)
		mu.Unlock()
		defer func() {
			mu.Lock()
			running--
			mu.Unlock()
		}()
		return "ext-" + g.Message.ID, nil
	})
	e.start(t, Config{Senders: map[string]inbox.Sender{inbox.ChannelDemo: s}, Concurrency: 8})
	for _, id := range want {
		e.events.messageStatus(t, id, inbox.MsgSent)
	}
	mu.Lock()
	defer mu.Unlock()
	if overlapped {
		t.Error("two replies of one conversation were sent at the same time")
	}
	if !slices.Equal(got, want) {
		t.Errorf("send order = %v, want %v", got, want)
	}
}

func TestRunWaitsForInflightSend(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	started := make(chan struct{})
	f := newFakeSender(func(g inbox.Outgoing, n int) (string, error) {
		close(started)
		<-release
		return "ext-late", nil
	})
	w := New(Config{Service: e.svc, Senders: map[string]inbox.Sender{inbox.ChannelDemo: f}, Now: e.clock.Now})
	e.svc.SetOnOutbound(w.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()

	m := e.reply(t, e.conv, "Hi")
	select {
	case <-started:
	case <-time.After(waitLimit):
		t.Fatal("send never started")
	}
	cancel()
	select {
	case <-stopped:
		t.Fatal("Run returned while a send was in flight")
	default:
	}
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after the send finished")
	}
	// The result was recorded before Run returned, not abandoned.
	if _, ok := e.outboxItem(t, m.ID); ok {
		t.Error("outbox item still present: the in-flight result was not recorded")
	}
	e.events.messageStatus(t, m.ID, inbox.MsgSent)
}

func TestRunWithoutServiceFails(t *testing.T) {
	if err := New(Config{}).Run(context.Background()); err == nil {
		t.Fatal("Run without a service succeeded")
	}
}
