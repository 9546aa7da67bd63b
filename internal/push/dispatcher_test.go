package push

import (
	"container/heap"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

// fixture is a real store and service with one team (an admin and two
// agents, each signed in with one registered device), a dispatcher driven
// step by step on a fake clock, and senders that record what they are
// asked to send.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	svc     *inbox.Service
	feed    *Feed
	d       *Dispatcher
	live    *fakeLive
	mu      sync.Mutex
	now     time.Time
	admin   inbox.Principal
	agents  map[string]inbox.Principal // by name: admin, ana, ben
	keys    map[string]string          // key id by name
	channel inbox.Channel
	sent    []sent
	answer  func(inbox.PushDevice) Result
	hosts   inbox.HostList
	store   *bolt.Store
	// published carries the last seq of each batch the store published;
	// the store publishes after Update returns, from its own goroutine.
	published chan uint64
	seen      uint64
}

type sent struct {
	agent string // name
	kind  string
	n     Notification
}

type fakeLive struct {
	mu     sync.Mutex
	online []string
}

func (l *fakeLive) Online(string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.online)
}
func (l *fakeLive) Disconnect(string, inbox.Match) {}
func (l *fakeLive) set(ids ...string) {
	l.mu.Lock()
	l.online = ids
	l.mu.Unlock()
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC),
		agents: map[string]inbox.Principal{}, keys: map[string]string{}, live: &fakeLive{}}
	f.feed = NewFeed(1024)
	f.published = make(chan uint64, 4096)
	store, err := bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{Publisher: inbox.PublisherFunc(func(evs []inbox.Event) {
		f.feed.Publish(evs)
		f.published <- evs[len(evs)-1].Seq
	})})
	if err != nil {
		t.Fatal(err)
	}
	f.store = store
	t.Cleanup(func() { store.Close() })
	f.svc, err = inbox.NewService(inbox.Config{Store: store, Now: f.clock, Live: f.live})
	if err != nil {
		t.Fatal(err)
	}
	f.hosts, err = inbox.ParsePushHosts("push.test")
	if err != nil {
		t.Fatal(err)
	}
	_, _, adminKey, rawAdmin, err := f.svc.CreateTenant(f.ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	f.keys["admin"] = adminKey.ID
	f.admin = f.signIn("admin", rawAdmin)
	for _, name := range []string{"ana", "ben"} {
		_, key, raw, err := f.svc.CreateAgent(f.ctx, f.admin, inbox.NewAgent{Name: name, Role: inbox.RoleAgent})
		if err != nil {
			t.Fatal(err)
		}
		f.keys[name] = key.ID
		f.signIn(name, raw)
	}
	f.channel, err = f.svc.CreateChannel(f.ctx, f.admin, inbox.ChannelWhatsApp, "Acme WhatsApp", map[string]string{
		"phone_number_id": "1", "access_token": "x", "app_secret": "y", "verify_token": "z"})
	if err != nil {
		t.Fatal(err)
	}
	for name := range f.agents {
		f.subscribe(name)
	}
	record := SenderFunc(func(_ context.Context, dev inbox.PushDevice, n Notification) Result {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.sent = append(f.sent, sent{agent: f.nameOf(dev.AgentID), kind: dev.Kind, n: n})
		if f.answer != nil {
			return f.answer(dev)
		}
		return Result{Outcome: Delivered}
	})
	f.d, err = New(Config{Feed: f.feed, Planner: f.svc, Live: f.live, Now: f.clock,
		Senders: map[string]Sender{inbox.PushWebPush: record, inbox.PushFCM: record}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) signIn(name, raw string) inbox.Principal {
	f.t.Helper()
	p, _, err := f.svc.SignIn(f.ctx, raw, inbox.Device{Name: name})
	if err != nil {
		f.t.Fatal(err)
	}
	f.agents[name] = p
	return p
}

func (f *fixture) nameOf(agentID string) string {
	for name, p := range f.agents {
		if p.Agent.ID == agentID {
			return name
		}
	}
	return agentID
}

func (f *fixture) subscribe(name string) {
	f.t.Helper()
	dh := "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
	_, err := f.svc.SubscribeWebPush(f.ctx, f.agents[name], inbox.WebPushSubscription{
		Endpoint: "https://push.test/" + name + "/" + uuid.NewString(), P256dh: dh, Auth: "BTBZMqHH6r4Tts7J_aSIgg"}, f.hosts)
	if err != nil {
		f.t.Fatalf("subscribe %s: %v", name, err)
	}
}

// receive brings in a customer message and returns its conversation id.
func (f *fixture) receive(handle, text string) string {
	f.t.Helper()
	got, err := f.svc.Receive(f.ctx, f.channel.ID, []inbox.Inbound{{
		ExternalID: uuid.NewString(), ContactHandle: handle, ContactName: "Customer " + handle, Text: text}})
	if err != nil {
		f.t.Fatal(err)
	}
	return got[0].Message.ConversationID
}

// run hands the committed events to the dispatcher, runs what is due now
// and returns, sorted, who was pushed.
func (f *fixture) run() []sent {
	f.t.Helper()
	_, head, err := f.store.Events(f.ctx, f.admin.Tenant.ID, 0, 1)
	if err != nil {
		f.t.Fatal(err)
	}
	for f.seen < head {
		select {
		case seq := <-f.published:
			f.seen = max(f.seen, seq)
		case <-time.After(5 * time.Second):
			f.t.Fatalf("events up to %d were never published (saw %d)", head, f.seen)
		}
	}
	for {
		select {
		case ev := <-f.feed.c:
			f.d.accept(ev, f.clock())
			continue
		default:
		}
		break
	}
	now := f.clock()
	for _, j := range f.d.step(f.ctx, now) {
		if retry := f.d.send(f.ctx, j, now); retry != nil {
			heap.Push(&f.d.retries, retry)
		}
	}
	f.mu.Lock()
	out := f.sent
	f.sent = nil
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].agent < out[j].agent })
	return out
}

func names(s []sent) string {
	var n []string
	for _, x := range s {
		n = append(n, x.agent)
	}
	return strings.Join(n, ",")
}

func TestWhoIsPushed(t *testing.T) {
	cases := []struct {
		name string
		// before runs after the message arrived and before its push is due.
		before func(f *fixture, conv string)
		want   string
	}{
		{"unassigned: every active agent", nil, "admin,ana,ben"},
		{"assigned: the assignee only", func(f *fixture, conv string) { f.assign(conv, "ana") }, "ana"},
		{"assignee with a live socket: nobody", func(f *fixture, conv string) {
			f.assign(conv, "ana")
			f.live.set(f.agents["ana"].Agent.ID)
		}, ""},
		{"unassigned: not those with a live socket", func(f *fixture, conv string) {
			f.live.set(f.agents["admin"].Agent.ID, f.agents["ben"].Agent.ID)
		}, "ana"},
		{"resolved meanwhile: nobody", func(f *fixture, conv string) {
			st := inbox.StatusResolved
			if _, err := f.svc.UpdateConversation(f.ctx, f.admin, conv, inbox.Patch{Status: &st}); err != nil {
				f.t.Fatal(err)
			}
		}, ""},
		{"read meanwhile: nobody", func(f *fixture, conv string) {
			if err := f.svc.MarkRead(f.ctx, f.agents["ben"], conv); err != nil {
				f.t.Fatal(err)
			}
		}, ""},
		{"key revoked: not that agent", func(f *fixture, conv string) {
			if err := f.svc.RevokeKey(f.ctx, f.admin, f.agents["ana"].Agent.ID, f.keys["ana"]); err != nil {
				f.t.Fatal(err)
			}
		}, "admin,ben"},
		{"deactivated: not that agent", func(f *fixture, conv string) {
			if err := f.svc.DeactivateAgent(f.ctx, f.admin, f.agents["ben"].Agent.ID); err != nil {
				f.t.Fatal(err)
			}
		}, "admin,ana"},
		{"signed out: not that device", func(f *fixture, conv string) {
			if err := f.svc.SignOut(f.ctx, f.agents["admin"]); err != nil {
				f.t.Fatal(err)
			}
		}, "ana,ben"},
		{"assigned to someone deactivated: everyone active", func(f *fixture, conv string) {
			f.assign(conv, "ben")
			if err := f.svc.DeactivateAgent(f.ctx, f.admin, f.agents["ben"].Agent.ID); err != nil {
				f.t.Fatal(err)
			}
		}, "admin,ana"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			conv := f.receive("+15550001", "Hello?")
			f.run() // settling: nothing is due yet
			if c.before != nil {
				c.before(f, conv)
			}
			f.advance(f.d.cfg.Settle)
			got := f.run()
			if names(got) != c.want {
				t.Errorf("pushed %q, want %q", names(got), c.want)
			}
			for _, s := range got {
				if s.n.Payload.ConversationID != conv {
					t.Errorf("push to %s names conversation %q, want %q", s.agent, s.n.Payload.ConversationID, conv)
				}
			}
		})
	}
}

func (f *fixture) assign(conv, name string) {
	f.t.Helper()
	id := f.agents[name].Agent.ID
	if _, err := f.svc.UpdateConversation(f.ctx, f.admin, conv, inbox.Patch{AssigneeSet: true, AssigneeID: &id}); err != nil {
		f.t.Fatal(err)
	}
}

func TestOnlyNewCustomerMessagesArePushed(t *testing.T) {
	f := newFixture(t)
	conv := f.receive("+15550001", "Hi")
	f.advance(f.d.cfg.Settle)
	if got := f.run(); len(got) != 3 {
		t.Fatalf("first message pushed %q, want all three", names(got))
	}
	f.advance(f.d.cfg.Window)
	for _, private := range []bool{false, true} {
		if _, _, err := f.svc.SendMessage(f.ctx, f.agents["ana"], conv, inbox.Draft{ClientID: uuid.NewString(), Text: "reply", Private: private}); err != nil {
			t.Fatal(err)
		}
	}
	f.advance(f.d.cfg.Window)
	if got := f.run(); len(got) != 0 {
		t.Errorf("agents' replies and notes pushed %q, want nobody", names(got))
	}
}

func TestBurstCoalescesIntoOnePushPerAgent(t *testing.T) {
	f := newFixture(t)
	f.live.set(f.agents["admin"].Agent.ID, f.agents["ben"].Agent.ID) // ana alone
	var conv string
	for i := 1; i <= 5; i++ {
		conv = f.receive("+15550001", fmt.Sprintf("message %d", i))
		f.advance(200 * time.Millisecond)
		if got := f.run(); len(got) != 0 {
			t.Fatalf("pushed during the burst, after message %d", i)
		}
	}
	f.advance(f.d.cfg.Settle)
	got := f.run()
	if len(got) != 1 || got[0].agent != "ana" {
		t.Fatalf("burst pushed %q, want ana once", names(got))
	}
	if got[0].n.Payload.Body != "message 5" {
		t.Errorf("push shows %q, want the latest message", got[0].n.Payload.Body)
	}
	first := got[0].n.Payload.Seq

	// More messages within the window wait for its end, then go as one.
	f.advance(5 * time.Second)
	f.receive("+15550001", "message 6")
	f.run()
	f.advance(5 * time.Second)
	f.receive("+15550001", "message 7")
	f.advance(f.d.cfg.Settle)
	if got := f.run(); len(got) != 0 {
		t.Fatalf("pushed %q inside the window", names(got))
	}
	f.advance(f.d.cfg.Window)
	got = f.run()
	if len(got) != 1 || got[0].n.Payload.Body != "message 7" || got[0].n.Payload.Seq <= first {
		t.Fatalf("after the window pushed %+v, want one push of message 7", got)
	}
	if got[0].n.Topic != Topic(f.admin.Tenant.ID, conv) {
		t.Error("pushes of one conversation do not share its topic")
	}

	// Another conversation is not held up by the first one's window.
	f.receive("+15550002", "other customer")
	f.advance(f.d.cfg.Settle)
	if got := f.run(); len(got) != 1 {
		t.Errorf("another conversation pushed %q, want ana", names(got))
	}
}

func TestNobodyPushedOpensNoWindow(t *testing.T) {
	f := newFixture(t)
	f.live.set(f.agents["admin"].Agent.ID, f.agents["ana"].Agent.ID, f.agents["ben"].Agent.ID)
	f.receive("+15550001", "one")
	f.advance(f.d.cfg.Settle)
	if got := f.run(); len(got) != 0 {
		t.Fatalf("pushed %q while everyone is online", names(got))
	}
	f.live.set() // everyone closes the app
	f.advance(time.Second)
	f.receive("+15550001", "two")
	f.advance(f.d.cfg.Settle)
	if got := f.run(); len(got) != 3 {
		t.Errorf("pushed %q, want everyone at once", names(got))
	}
}

func TestPayload(t *testing.T) {
	f := newFixture(t)
	conv := f.receive("+15550001", "  Where is\nmy order?  ")
	f.advance(f.d.cfg.Settle)
	got := f.run()
	if len(got) == 0 {
		t.Fatal("nobody pushed")
	}
	p := got[0].n.Payload
	if p.TenantID != f.admin.Tenant.ID || p.ConversationID != conv || p.Seq == 0 {
		t.Errorf("ids = %+v", p)
	}
	if p.Title != "Customer +15550001 · Acme WhatsApp" {
		t.Errorf("title = %q, want contact and channel", p.Title)
	}
	if p.Body != "Where is my order?" {
		t.Errorf("body = %q, want the text on one line", p.Body)
	}
	n := got[0].n
	if !n.Urgent || n.TTL != 24*time.Hour || n.Private {
		t.Errorf("notification = %+v, want urgent, 24h TTL, not private", n)
	}
}

func TestPrivateModeSendsOnlyIDs(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.SetPushSettings(f.ctx, f.admin, inbox.PushSettings{Private: true}); err != nil {
		t.Fatal(err)
	}
	conv := f.receive("+15550001", "my card number is 4111")
	f.advance(f.d.cfg.Settle)
	got := f.run()
	if len(got) != 3 {
		t.Fatalf("pushed %q, want everyone", names(got))
	}
	for _, s := range got {
		p := s.n.Payload
		if !s.n.Private || p.Title != "" || p.Body != "" || p.ConversationID != conv {
			t.Errorf("private push to %s = %+v", s.agent, s.n)
		}
		if strings.Contains(p.Title+p.Body, "4111") || strings.Contains(p.Title, "Customer") {
			t.Errorf("private push to %s carries content: %+v", s.agent, p)
		}
	}
}

func TestNoStalePushes(t *testing.T) {
	f := newFixture(t)
	f.receive("+15550001", "hello")
	// The dispatcher was stuck (or the store slow) for longer than MaxAge.
	f.advance(f.d.cfg.MaxAge + time.Second)
	if got := f.run(); len(got) != 0 {
		t.Errorf("pushed %q about a message older than MaxAge", names(got))
	}
}

func TestOutcomes(t *testing.T) {
	f := newFixture(t)
	f.live.set(f.agents["admin"].Agent.ID, f.agents["ben"].Agent.ID)
	ana := f.agents["ana"]
	count := func() int {
		ds, err := f.svc.PushDevices(f.ctx, ana)
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}

	// Rejected (our fault): kept, not retried.
	f.answer = func(inbox.PushDevice) Result { return Result{Outcome: Rejected, Status: 403} }
	f.receive("+15550001", "one")
	f.advance(f.d.cfg.Settle)
	if got := f.run(); len(got) != 1 {
		t.Fatalf("pushed %q, want ana", names(got))
	}
	if count() != 1 || f.d.retries.Len() != 0 {
		t.Fatalf("after a refusal: %d devices, %d retries; want 1, 0", count(), f.d.retries.Len())
	}

	// Retry: Retry-After is honoured, then it goes through.
	f.answer = func(inbox.PushDevice) Result {
		return Result{Outcome: Retry, Status: 429, RetryAfter: 20 * time.Second}
	}
	f.receive("+15550002", "two")
	f.advance(f.d.cfg.Settle)
	if got := f.run(); len(got) != 1 {
		t.Fatalf("pushed %q, want ana", names(got))
	}
	f.answer = nil
	f.advance(19 * time.Second)
	if got := f.run(); len(got) != 0 {
		t.Fatal("retried before Retry-After")
	}
	f.advance(time.Second)
	if got := f.run(); len(got) != 1 || got[0].n.Payload.Body != "two" {
		t.Fatalf("retry pushed %+v, want ana's push of \"two\"", got)
	}

	// Retries stop at MaxAttempts.
	f.answer = func(inbox.PushDevice) Result { return Result{Outcome: Retry, Status: 503} }
	f.receive("+15550003", "three")
	f.advance(f.d.cfg.Settle)
	attempts := len(f.run())
	for range 20 {
		f.advance(time.Minute)
		attempts += len(f.run())
	}
	if attempts != f.d.cfg.MaxAttempts {
		t.Errorf("tried %d times, want %d", attempts, f.d.cfg.MaxAttempts)
	}

	// Gone: forgotten.
	f.answer = func(inbox.PushDevice) Result { return Result{Outcome: Gone, Status: 410} }
	f.receive("+15550004", "four")
	f.advance(f.d.cfg.Settle)
	f.run()
	if count() != 0 {
		t.Errorf("after 410 ana has %d devices, want 0", count())
	}
}

func TestRetriesStopBeforeThePushGoesStale(t *testing.T) {
	f := newFixture(t)
	f.live.set(f.agents["admin"].Agent.ID, f.agents["ben"].Agent.ID)
	f.answer = func(inbox.PushDevice) Result { return Result{Outcome: Retry, RetryAfter: time.Hour} }
	f.receive("+15550001", "one")
	f.advance(f.d.cfg.Settle)
	f.run()
	if f.d.retries.Len() != 0 || f.d.Stats().GaveUp != 1 {
		t.Errorf("a Retry-After beyond MaxAge left %d retries (gave up %d); want it abandoned", f.d.retries.Len(), f.d.Stats().GaveUp)
	}
}

func TestLapsedSessionsAreDroppedNotPushed(t *testing.T) {
	f := newFixture(t)
	f.advance(31 * 24 * time.Hour) // every session has expired
	f.receive("+15550001", "anyone?")
	f.advance(f.d.cfg.Settle)
	if got := f.run(); len(got) != 0 {
		t.Errorf("pushed %q to expired sessions", names(got))
	}
	ds, err := f.svc.PushDevices(f.ctx, f.agents["ana"])
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 0 {
		t.Errorf("%d devices of an expired session kept, want them dropped", len(ds))
	}
}

func TestFeedNeverBlocks(t *testing.T) {
	feed := NewFeed(2)
	ev := inbox.Event{Type: inbox.EventMessageCreated}
	feed.Publish([]inbox.Event{ev, ev, ev, {Type: inbox.EventConversationUpdated}, ev})
	if len(feed.c) != 2 || feed.Dropped() != 2 {
		t.Errorf("queued %d, dropped %d; want 2 and 2 (other types ignored)", len(feed.c), feed.Dropped())
	}
}

func TestExpiredSubscriptionsAreDropped(t *testing.T) {
	f := newFixture(t)
	f.live.set(f.agents["admin"].Agent.ID, f.agents["ben"].Agent.ID)
	ana := f.agents["ana"]
	soon := f.clock().Add(time.Hour)
	dev, err := f.svc.SubscribeWebPush(f.ctx, ana, inbox.WebPushSubscription{
		Endpoint: "https://push.test/ana/expiring", P256dh: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
		Auth: "BTBZMqHH6r4Tts7J_aSIgg", ExpiresAt: &soon}, f.hosts)
	if err != nil {
		t.Fatal(err)
	}
	f.advance(2 * time.Hour)
	f.receive("+15550001", "still there?")
	f.advance(f.d.cfg.Settle)
	if got := f.run(); len(got) != 1 || got[0].agent != "ana" {
		t.Fatalf("pushed %q, want ana's one live device", names(got))
	}
	ds, err := f.svc.PushDevices(f.ctx, ana)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.ID == dev.ID {
			t.Error("the expired subscription was kept")
		}
	}
	if len(ds) != 1 {
		t.Errorf("ana has %d devices, want the unexpired one", len(ds))
	}
}
