package inbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/inbox"
)

// fixture is a service on a real store with one tenant, its admin,
// an agent and a demo channel.
type fixture struct {
	svc     *inbox.Service
	store   inbox.Store
	now     time.Time
	mu      sync.Mutex
	admin   inbox.Principal
	agent   inbox.Principal
	channel inbox.Channel
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
	store := openStore(t, nil) // bbolt, or PostgreSQL under TestPostgres
	f := &fixture{store: store, now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	var err error
	f.svc, err = inbox.NewService(inbox.Config{Store: store, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _, _, adminKey, err := f.svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	f.admin, _, err = f.svc.SignIn(ctx, adminKey, inbox.Device{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, agentKey, err := f.svc.CreateAgent(ctx, f.admin, inbox.NewAgent{Name: "Ana", Role: inbox.RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	f.agent, _, err = f.svc.SignIn(ctx, agentKey, inbox.Device{})
	if err != nil {
		t.Fatal(err)
	}
	f.channel, err = f.svc.CreateChannel(ctx, f.admin, inbox.ChannelDemo, "Demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) receive(t *testing.T, handle, extID, text string) inbox.Received {
	t.Helper()
	got, err := f.svc.Receive(context.Background(), f.channel.ID, []inbox.Inbound{{ExternalID: extID, ContactHandle: handle, ContactName: "Customer " + handle, Text: text}})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return got[0]
}

func (f *fixture) conversation(t *testing.T, id string) inbox.Conversation {
	t.Helper()
	c, err := f.svc.GetConversation(context.Background(), f.agent, id)
	if err != nil {
		t.Fatalf("get conversation: %v", err)
	}
	return c
}

func TestReceiveDeduplicatesAndThreads(t *testing.T) {
	f := newFixture(t)
	first := f.receive(t, "+15550001", "wamid.1", "Hi, where is my order?")
	again := f.receive(t, "+15550001", "wamid.1", "Hi, where is my order?")
	if !again.Duplicate || again.Message.ID != first.Message.ID {
		t.Fatalf("redelivery stored twice: %+v", again)
	}
	second := f.receive(t, "+15550001", "wamid.2", "Order 1234")
	if second.Message.ConversationID != first.Message.ConversationID {
		t.Fatal("same contact got a second conversation")
	}
	c := f.conversation(t, first.Message.ConversationID)
	if c.UnreadCount != 2 || c.LastMessage == nil || c.LastMessage.ID != second.Message.ID {
		t.Fatalf("unread %d, last %+v", c.UnreadCount, c.LastMessage)
	}
	msgs, err := f.svc.ListMessages(context.Background(), f.agent, c.ID, "", 0)
	if err != nil || len(msgs) != 2 || msgs[0].ID != first.Message.ID {
		t.Fatalf("messages %v, err %v", msgs, err)
	}
}

func TestInboundReopensResolvedAndSnoozed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conv := f.receive(t, "+15550002", "a", "hello").Message.ConversationID
	resolved := inbox.StatusResolved
	if _, err := f.svc.UpdateConversation(ctx, f.agent, conv, inbox.Patch{Status: &resolved}); err != nil {
		t.Fatal(err)
	}
	f.receive(t, "+15550002", "b", "one more thing")
	if c := f.conversation(t, conv); c.Status != inbox.StatusOpen {
		t.Fatalf("resolved conversation is %s after a new message", c.Status)
	}
	until := f.now.Add(time.Hour)
	if _, err := f.svc.UpdateConversation(ctx, f.agent, conv, inbox.Patch{SnoozedSet: true, SnoozedUntil: &until}); err != nil {
		t.Fatal(err)
	}
	f.receive(t, "+15550002", "c", "are you there?")
	if c := f.conversation(t, conv); c.Status != inbox.StatusOpen || c.SnoozedUntil != nil {
		t.Fatalf("snoozed conversation is %s (%v) after a new message", c.Status, c.SnoozedUntil)
	}
}

func TestSnoozeWakesAtItsTime(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conv := f.receive(t, "+15550003", "a", "hello").Message.ConversationID
	until := f.now.Add(10 * time.Minute)
	if _, err := f.svc.UpdateConversation(ctx, f.agent, conv, inbox.Patch{SnoozedSet: true, SnoozedUntil: &until}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.svc.WakeSnoozed(ctx, f.now.Add(9*time.Minute)); err != nil || n != 0 {
		t.Fatalf("woke %d early (err %v)", n, err)
	}
	if n, err := f.svc.WakeSnoozed(ctx, until); err != nil || n != 1 {
		t.Fatalf("woke %d at its time (err %v)", n, err)
	}
	if c := f.conversation(t, conv); c.Status != inbox.StatusOpen {
		t.Fatalf("status %s after wake", c.Status)
	}
	if n, _ := f.svc.WakeSnoozed(ctx, until.Add(time.Hour)); n != 0 {
		t.Fatalf("woke %d again", n)
	}
}

func TestSendMessageIsIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conv := f.receive(t, "+15550004", "a", "hello").Message.ConversationID
	clientID := uuid.NewString()
	m1, created, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: clientID, Text: "Hi! Let me check."})
	if err != nil || !created || m1.Status != inbox.MsgPending {
		t.Fatalf("first send: %+v created=%v err=%v", m1, created, err)
	}
	m2, created, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: clientID, Text: "Hi! Let me check."})
	if err != nil || created || m2.ID != m1.ID {
		t.Fatalf("repeat: %+v created=%v err=%v", m2, created, err)
	}
	due, _, err := f.svc.Due(ctx, f.now, 10)
	if err != nil || len(due) != 1 || due[0].Message.ID != m1.ID {
		t.Fatalf("outbox has %d items (err %v), want exactly the one reply", len(due), err)
	}
	other := f.receive(t, "+15550005", "b", "hi").Message.ConversationID
	if _, _, err := f.svc.SendMessage(ctx, f.agent, other, inbox.Draft{ClientID: clientID, Text: "x"}); inbox.ErrorCode(err) != inbox.CodeConflict {
		t.Fatalf("client id reused in another conversation: %v, want conflict", err)
	}
	note, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), Text: "VIP customer", Private: true})
	if err != nil || note.Kind != inbox.KindNote {
		t.Fatalf("note: %+v %v", note, err)
	}
	if due, _, _ := f.svc.Due(ctx, f.now, 10); len(due) != 1 {
		t.Fatalf("a private note went to the outbox")
	}
}

func TestStatusOnlyMovesForward(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conv := f.receive(t, "+15550006", "a", "hello").Message.ConversationID
	m, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), Text: "On its way"})
	if err != nil {
		t.Fatal(err)
	}
	due, _, _ := f.svc.Due(ctx, f.now, 10)
	if err := f.svc.SendResult(ctx, due[0].Item, "ext-1", nil); err != nil {
		t.Fatal(err)
	}
	for _, st := range []inbox.MessageStatus{inbox.MsgRead, inbox.MsgDelivered, inbox.MsgFailed, inbox.MsgSent} {
		if err := f.svc.ReportStatus(ctx, f.channel.ID, []inbox.StatusReport{{ExternalID: "ext-1", Status: st}}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _ := f.svc.ListMessages(ctx, f.agent, conv, "", 0)
	last := msgs[len(msgs)-1]
	if last.ID != m.ID || last.Status != inbox.MsgRead || last.ExternalID != "ext-1" {
		t.Fatalf("got %s %s, want read", last.ID, last.Status)
	}
}

func TestRevokedKeyEndsSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	keys, err := f.svc.ListKeys(ctx, f.admin, f.agent.Agent.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v err %v", keys, err)
	}
	if _, err := f.svc.ListKeys(ctx, f.agent, f.agent.Agent.ID); !errors.Is(err, inbox.ErrForbidden) {
		t.Fatalf("agent listing keys: %v, want forbidden", err)
	}
	if err := f.svc.RevokeKey(ctx, f.admin, f.agent.Agent.ID, keys[0].ID); err != nil {
		t.Fatal(err)
	}
	// The principal's token is not kept by the fixture, so check through the
	// store: no session of that key is left.
	var left int
	f.store.View(ctx, func(tx inbox.Tx) error {
		return tx.Scan(inbox.Collection{Name: inbox.CollSessions}, "", "", false, func(_ string, _ []byte) (bool, error) {
			left++
			return true, nil
		})
	})
	if left != 1 { // the admin's
		t.Fatalf("%d sessions left, want only the admin's", left)
	}
}

func TestSignInAuthenticateSignOut(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, key, raw, err := f.svc.CreateAgent(ctx, f.admin, inbox.NewAgent{Name: "Bo", Email: "bo@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if key.Prefix != raw[:inbox.PrefixLen] {
		t.Fatalf("prefix %q of %q", key.Prefix, raw)
	}
	p, token, err := f.svc.SignIn(ctx, raw, inbox.Device{Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Authenticate(ctx, token)
	if err != nil || got.Agent.ID != p.Agent.ID || got.Tenant.ID != f.admin.Tenant.ID {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	for _, bad := range []string{"", "obs_nope", raw, token + "x"} {
		if _, err := f.svc.Authenticate(ctx, bad); !errors.Is(err, inbox.ErrUnauthorized) {
			t.Errorf("token %q: %v, want unauthorized", bad, err)
		}
	}
	f.advance(31 * 24 * time.Hour)
	if _, err := f.svc.Authenticate(ctx, token); !errors.Is(err, inbox.ErrUnauthorized) {
		t.Fatalf("expired session still works: %v", err)
	}
	_, token, _ = f.svc.SignIn(ctx, raw, inbox.Device{})
	p, _ = f.svc.Authenticate(ctx, token)
	if err := f.svc.SignOut(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(ctx, token); !errors.Is(err, inbox.ErrUnauthorized) {
		t.Fatalf("signed-out session still works: %v", err)
	}
	last := "a"
	if raw[len(raw)-1] == 'a' {
		last = "b"
	}
	if _, _, err := f.svc.SignIn(ctx, raw[:len(raw)-1]+last, inbox.Device{}); !errors.Is(err, inbox.ErrUnauthorized) {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestDeactivateUnassignsAndLocksOut(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conv := f.receive(t, "+15550007", "a", "hello").Message.ConversationID
	id := f.agent.Agent.ID
	if _, err := f.svc.UpdateConversation(ctx, f.admin, conv, inbox.Patch{AssigneeSet: true, AssigneeID: &id}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeactivateAgent(ctx, f.admin, id); err != nil {
		t.Fatal(err)
	}
	if c := f.conversation(t, conv); c.AssigneeID != nil {
		t.Fatalf("still assigned to %s", *c.AssigneeID)
	}
	if err := f.svc.DeactivateAgent(ctx, f.admin, f.admin.Agent.ID); inbox.ErrorCode(err) != inbox.CodeConflict {
		t.Fatalf("deactivating the last admin: %v, want conflict", err)
	}
	if _, err := f.svc.UpdateConversation(ctx, f.admin, conv, inbox.Patch{AssigneeSet: true, AssigneeID: &id}); inbox.ErrorCode(err) != inbox.CodeInvalid {
		t.Fatalf("assigning to a deactivated agent: %v, want invalid", err)
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conv := f.receive(t, "+15550008", "a", "secret order").Message.ConversationID
	_, _, _, otherKey, err := f.svc.CreateTenant(ctx, "Other")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := f.svc.SignIn(ctx, otherKey, inbox.Device{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GetConversation(ctx, other, conv); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Fatalf("other tenant reads conversation: %v", err)
	}
	if _, err := f.svc.ListMessages(ctx, other, conv, "", 0); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Fatalf("other tenant reads messages: %v", err)
	}
	list, _, err := f.svc.ListConversations(ctx, other, inbox.Filter{})
	if err != nil || len(list) != 0 {
		t.Fatalf("other tenant lists %d conversations", len(list))
	}
	if err := f.svc.RevokeKey(ctx, other, f.agent.Agent.ID, "x"); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Fatalf("other tenant revokes: %v", err)
	}
	evs, head, _, err := f.svc.Events(ctx, other, 0, 200)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == inbox.EventMessageCreated {
			t.Fatalf("other tenant's log has a message event: %s", e.Data)
		}
	}
	if head != uint64(len(evs)) {
		t.Fatalf("head %d with %d events", head, len(evs))
	}
}

func TestListFiltersAndPages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 7; i++ {
		f.advance(time.Second)
		ids = append(ids, f.receive(t, "+1555010"+string(rune('0'+i)), "m"+string(rune('0'+i)), "parcel number "+string(rune('A'+i))).Message.ConversationID)
	}
	seen := map[string]bool{}
	cursor := ""
	var order []string
	for {
		page, next, err := f.svc.ListConversations(ctx, f.agent, inbox.Filter{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			if seen[c.ID] {
				t.Fatalf("%s seen twice", c.ID)
			}
			seen[c.ID] = true
			order = append(order, c.ID)
		}
		if next == nil {
			break
		}
		cursor = *next
	}
	if len(order) != 7 || order[0] != ids[6] || order[6] != ids[0] {
		t.Fatalf("order %v, want newest first of %v", order, ids)
	}
	hits, _, err := f.svc.ListConversations(ctx, f.agent, inbox.Filter{Q: "PARCEL NUMBER c"})
	if err != nil || len(hits) != 1 || hits[0].ID != ids[2] {
		t.Fatalf("search hits %v", hits)
	}
	me := f.agent.Agent.ID
	f.svc.UpdateConversation(ctx, f.agent, ids[1], inbox.Patch{AssigneeSet: true, AssigneeID: &me, Labels: &[]string{"VIP"}})
	mine, _, _ := f.svc.ListConversations(ctx, f.agent, inbox.Filter{Assignee: "me"})
	none, _, _ := f.svc.ListConversations(ctx, f.agent, inbox.Filter{Assignee: "none"})
	vip, _, _ := f.svc.ListConversations(ctx, f.agent, inbox.Filter{Label: "vip"})
	if len(mine) != 1 || len(none) != 6 || len(vip) != 1 || vip[0].ID != ids[1] {
		t.Fatalf("mine %d none %d vip %d", len(mine), len(none), len(vip))
	}
	if _, _, err := f.svc.ListConversations(ctx, f.agent, inbox.Filter{Cursor: "!!"}); inbox.ErrorCode(err) != inbox.CodeInvalid {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestEventLogHasNoGaps(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				f.svc.Receive(ctx, f.channel.ID, []inbox.Inbound{{ExternalID: uuid.NewString(), ContactHandle: "+1555" + string(rune('0'+w)), Text: "hi"}})
			}
		}(w)
	}
	wg.Wait()
	var all []inbox.Event
	var since uint64
	for {
		evs, head, reset, err := f.svc.Events(ctx, f.admin, since, 200)
		if err != nil || reset {
			t.Fatalf("events: %v reset=%v", err, reset)
		}
		all = append(all, evs...)
		if len(evs) == 0 || evs[len(evs)-1].Seq == head {
			break
		}
		since = evs[len(evs)-1].Seq
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	if _, head, reset, _ := f.svc.Events(ctx, f.admin, uint64(len(all)+5), 10); !reset || head != uint64(len(all)) {
		t.Fatalf("since beyond head: reset=%v head=%d", reset, head)
	}
}
