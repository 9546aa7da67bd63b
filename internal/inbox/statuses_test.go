package inbox_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/inbox"
)

// chanFixture is a service on a real store with one tenant, an agent and
// one provider channel.
type chanFixture struct {
	svc     *inbox.Service
	store   inbox.Store
	agent   inbox.Principal
	channel inbox.Channel
	mu      sync.Mutex
	now     time.Time
	wakes   int
}

func (f *chanFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *chanFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newChanFixture(t *testing.T, typ string) *chanFixture {
	t.Helper()
	f := &chanFixture{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	// bbolt, or PostgreSQL under TestPostgres
	store := openStore(t, nil)
	f.store = store
	var err error
	f.svc, err = inbox.NewService(inbox.Config{Store: store, Now: f.clock, ReadReceipts: []string{inbox.ChannelWhatsApp},
		OnOutbound: func() { f.mu.Lock(); f.wakes++; f.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _, _, adminKey, err := f.svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := f.svc.SignIn(ctx, adminKey, inbox.Device{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	f.agent = admin
	cfg := map[string]string{
		inbox.ChannelWhatsApp: "phone_number_id=1,access_token=t,app_secret=s,verify_token=v",
		inbox.ChannelTikTok:   "business_id=b,access_token=t,client_secret=s",
		inbox.ChannelSMS:      "send_url=http://127.0.0.1:1/send,auth_token=t,webhook_secret=s",
	}[typ]
	conf := map[string]string{}
	for _, kv := range splitPairs(cfg) {
		conf[kv[0]] = kv[1]
	}
	f.channel, err = f.svc.CreateChannel(ctx, admin, typ, "Provider", conf)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func splitPairs(s string) [][2]string {
	var out [][2]string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			part := s[start:i]
			for j := 0; j < len(part); j++ {
				if part[j] == '=' {
					out = append(out, [2]string{part[:j], part[j+1:]})
					break
				}
			}
			start = i + 1
		}
	}
	return out
}

func (f *chanFixture) receive(t *testing.T, handle, extID, text string) inbox.Message {
	t.Helper()
	got, err := f.svc.Receive(context.Background(), f.channel.ID, []inbox.Inbound{{ExternalID: extID, ContactHandle: handle, Text: text}})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return got[0].Message
}

// reply writes an agent's reply and returns it with its outbox item.
func (f *chanFixture) reply(t *testing.T, conv, text string) (inbox.Message, inbox.OutboxItem) {
	t.Helper()
	ctx := context.Background()
	m, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), Text: text})
	if err != nil {
		t.Fatalf("send message: %v", err)
	}
	return m, f.item(t, m.ID)
}

// item finds the outbox item of a message; it fails if there is none.
func (f *chanFixture) item(t *testing.T, msgID string) inbox.OutboxItem {
	t.Helper()
	it, ok := f.findItem(t, msgID)
	if !ok {
		t.Fatalf("no outbox item for %s", msgID)
	}
	return it
}

func (f *chanFixture) findItem(t *testing.T, msgID string) (inbox.OutboxItem, bool) {
	t.Helper()
	due, _, err := f.svc.Due(context.Background(), f.clock().Add(48*time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range due {
		if g.Item.MessageID == msgID {
			return g.Item, true
		}
	}
	return inbox.OutboxItem{}, false
}

func (f *chanFixture) message(t *testing.T, conv, id string) inbox.Message {
	t.Helper()
	msgs, err := f.svc.ListMessages(context.Background(), f.agent, conv, "", 200)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("message %s not in its conversation", id)
	return inbox.Message{}
}

// updates counts the message.updated events about id in the tenant's log
// (read from the store: publication to subscribers happens after commit,
// on its own goroutine).
func (f *chanFixture) updates(t *testing.T, id string) int {
	t.Helper()
	events, _, err := f.store.Events(context.Background(), f.agent.Tenant.ID, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Type != inbox.EventMessageUpdated {
			continue
		}
		var m inbox.Message
		if json.Unmarshal(e.Data, &m) == nil && m.ID == id {
			n++
		}
	}
	return n
}

func report(ext string, st inbox.MessageStatus) []inbox.StatusReport {
	return []inbox.StatusReport{{ExternalID: ext, Status: st}}
}

func TestStatusBeforeSendResultIsApplied(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelSMS)
	ctx := context.Background()
	conv := f.receive(t, "+1555", "in-1", "hi").ConversationID
	m, item := f.reply(t, conv, "hello")

	// The provider's "delivered" and "read" overtake the answer to our
	// send call, out of order.
	for _, st := range []inbox.MessageStatus{inbox.MsgRead, inbox.MsgDelivered} {
		if err := f.svc.ReportStatus(ctx, f.channel.ID, report("gw-1", st)); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.message(t, conv, m.ID); got.Status != inbox.MsgPending {
		t.Fatalf("before the send is recorded: %s, want pending", got.Status)
	}
	if err := f.svc.SendResult(ctx, item, "gw-1", nil); err != nil {
		t.Fatal(err)
	}
	got := f.message(t, conv, m.ID)
	if got.Status != inbox.MsgRead || got.ExternalID != "gw-1" {
		t.Fatalf("after: status %s external %q, want read gw-1", got.Status, got.ExternalID)
	}
	if n := f.updates(t, m.ID); n != 1 {
		t.Errorf("%d message.updated events, want 1 (sent and the kept reports at once)", n)
	}
	// The kept reports are gone: nothing is left to drop.
	if n, err := f.svc.DropStaleStatuses(ctx, f.clock().Add(48*time.Hour)); err != nil || n != 0 {
		t.Errorf("DropStaleStatuses = %d, %v; want 0", n, err)
	}
}

func TestFailedNeverFollowsDeliveredAndDuplicatesChangeNothing(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelSMS)
	ctx := context.Background()
	conv := f.receive(t, "+1555", "in-1", "hi").ConversationID
	m, item := f.reply(t, conv, "hello")
	if err := f.svc.SendResult(ctx, item, "gw-1", nil); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		st   inbox.MessageStatus
		want inbox.MessageStatus
	}{
		{inbox.MsgDelivered, inbox.MsgDelivered},
		{inbox.MsgDelivered, inbox.MsgDelivered}, // redelivered webhook
		{inbox.MsgFailed, inbox.MsgDelivered},    // failed never follows delivered
		{inbox.MsgSent, inbox.MsgDelivered},      // late sent
		{inbox.MsgRead, inbox.MsgRead},
		{inbox.MsgDelivered, inbox.MsgRead}, // read is never downgraded
		{inbox.MsgRead, inbox.MsgRead},
	}
	for i, s := range steps {
		if err := f.svc.ReportStatus(ctx, f.channel.ID, report("gw-1", s.st)); err != nil {
			t.Fatal(err)
		}
		if got := f.message(t, conv, m.ID).Status; got != s.want {
			t.Fatalf("step %d (%s): status %s, want %s", i, s.st, got, s.want)
		}
	}
	if n := f.updates(t, m.ID); n != 3 {
		t.Errorf("%d message.updated events, want 3 (sent, delivered, read)", n)
	}
}

func TestFailedStatusKeepsProviderError(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelSMS)
	ctx := context.Background()
	conv := f.receive(t, "+1555", "in-1", "hi").ConversationID
	m, item := f.reply(t, conv, "hello")
	if err := f.svc.SendResult(ctx, item, "gw-1", nil); err != nil {
		t.Fatal(err)
	}
	e := &inbox.MessageError{Code: "131047", Message: "Re-engagement message"}
	if err := f.svc.ReportStatus(ctx, f.channel.ID, []inbox.StatusReport{{ExternalID: "gw-1", Status: inbox.MsgFailed, Error: e}}); err != nil {
		t.Fatal(err)
	}
	got := f.message(t, conv, m.ID)
	if got.Status != inbox.MsgFailed || got.Error == nil || *got.Error != *e {
		t.Fatalf("got %s %+v, want failed with %+v", got.Status, got.Error, e)
	}
}

func TestUnknownStatusIsDroppedAfterADay(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelSMS)
	ctx := context.Background()
	if err := f.svc.ReportStatus(ctx, f.channel.ID, report("never-seen", inbox.MsgDelivered)); err != nil {
		t.Fatal(err)
	}
	if n, err := f.svc.DropStaleStatuses(ctx, f.clock().Add(23*time.Hour)); err != nil || n != 0 {
		t.Fatalf("within the day: dropped %d, %v; want 0", n, err)
	}
	if n, err := f.svc.DropStaleStatuses(ctx, f.clock().Add(25*time.Hour)); err != nil || n != 1 {
		t.Fatalf("after the day: dropped %d, %v; want 1", n, err)
	}
	// Dropped means not applied to a message that shows up later.
	conv := f.receive(t, "+1555", "in-1", "hi").ConversationID
	m, item := f.reply(t, conv, "hello")
	if err := f.svc.SendResult(ctx, item, "never-seen", nil); err != nil {
		t.Fatal(err)
	}
	if got := f.message(t, conv, m.ID).Status; got != inbox.MsgSent {
		t.Fatalf("status %s, want sent (the stale report was dropped)", got)
	}
}

func TestReadUpToMarksEarlierReplies(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelTikTok)
	ctx := context.Background()
	conv := f.receive(t, "user-1", "in-1", "hi").ConversationID
	var ids []string
	for _, text := range []string{"one", "two"} {
		m, item := f.reply(t, conv, text)
		if err := f.svc.SendResult(ctx, item, "tt-"+text, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
		f.advance(time.Minute)
	}
	readAt := f.clock()
	f.advance(time.Minute)
	later, item := f.reply(t, conv, "three")
	if err := f.svc.SendResult(ctx, item, "tt-three", nil); err != nil {
		t.Fatal(err)
	}
	n, err := f.svc.ReadUpTo(ctx, f.channel.ID, "user-1", readAt)
	if err != nil || n != 2 {
		t.Fatalf("ReadUpTo = %d, %v; want 2", n, err)
	}
	for _, id := range ids {
		if st := f.message(t, conv, id).Status; st != inbox.MsgRead {
			t.Errorf("%s: %s, want read", id, st)
		}
	}
	if st := f.message(t, conv, later.ID).Status; st != inbox.MsgSent {
		t.Errorf("reply after the read time: %s, want sent", st)
	}
	if n, err := f.svc.ReadUpTo(ctx, f.channel.ID, "nobody", readAt); err != nil || n != 0 {
		t.Errorf("unknown contact: %d, %v; want 0, nil", n, err)
	}
}

func TestEchoesAreStoredOnceAndAppSendsAppear(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelTikTok)
	ctx := context.Background()
	in := f.receive(t, "user-1", "in-1", "hi")
	conv := in.ConversationID
	m, item := f.reply(t, conv, "our reply")
	if err := f.svc.SendResult(ctx, item, "tt-1", nil); err != nil {
		t.Fatal(err)
	}
	echo := inbox.Inbound{ExternalID: "tt-1", ContactHandle: "user-1", Kind: inbox.KindText, Text: "our reply"}
	got, err := f.svc.RecordEchoes(ctx, f.channel.ID, []inbox.Inbound{echo})
	if err != nil || !got[0].Duplicate || got[0].Message.ID != m.ID {
		t.Fatalf("echo of our send: %+v, %v; want a duplicate of %s", got, err, m.ID)
	}
	app := inbox.Inbound{ExternalID: "tt-2", ContactHandle: "user-1", Kind: inbox.KindText, Text: "sent from the phone"}
	got, err = f.svc.RecordEchoes(ctx, f.channel.ID, []inbox.Inbound{app})
	if err != nil || got[0].Duplicate {
		t.Fatalf("app send: %+v, %v", got, err)
	}
	a := got[0].Message
	if a.Direction != inbox.DirectionOut || a.Status != inbox.MsgSent || a.Author.Type != inbox.EchoAuthor || a.ConversationID != conv {
		t.Fatalf("app send stored as %+v", a)
	}
	if _, ok := f.findItem(t, a.ID); ok {
		t.Fatal("a message sent from the provider's app was queued to be sent again")
	}
	again, err := f.svc.RecordEchoes(ctx, f.channel.ID, []inbox.Inbound{app})
	if err != nil || !again[0].Duplicate || again[0].Message.ID != a.ID {
		t.Fatalf("redelivered app send: %+v, %v", again, err)
	}
	c, err := f.svc.GetConversation(ctx, f.agent, conv)
	if err != nil || c.LastMessage == nil || c.LastMessage.ID != a.ID || c.UnreadCount != 1 {
		t.Fatalf("conversation after the app send: %+v, %v", c, err)
	}
}

func TestEchoOvertakingTheSendIsMatched(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelTikTok)
	ctx := context.Background()
	conv := f.receive(t, "user-1", "in-1", "hi").ConversationID
	m, item := f.reply(t, conv, "on its way")
	if _, err := f.svc.BeginSend(ctx, item); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.RecordEchoes(ctx, f.channel.ID, []inbox.Inbound{{ExternalID: "tt-9", ContactHandle: "user-1", Kind: inbox.KindText, Text: "on its way"}})
	if err != nil || !got[0].Duplicate || got[0].Message.ID != m.ID {
		t.Fatalf("echo during the send: %+v, %v; want matched to %s", got, err, m.ID)
	}
	if err := f.svc.SendResult(ctx, item, "tt-9", nil); err != nil {
		t.Fatal(err)
	}
	msgs, _ := f.svc.ListMessages(ctx, f.agent, conv, "", 0)
	if len(msgs) != 2 || msgs[1].ID != m.ID || msgs[1].Status != inbox.MsgSent || msgs[1].ExternalID != "tt-9" {
		t.Fatalf("messages %+v, want the inbound one and the reply, sent as tt-9", msgs)
	}
}

func TestReplyWindowAndLength(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelTikTok)
	ctx := context.Background()
	conv := f.receive(t, "user-1", "in-1", "hi").ConversationID
	long := make([]rune, 951)
	for i := range long {
		long[i] = 'é'
	}
	_, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), Text: string(long)})
	if inbox.ErrorCode(err) != inbox.CodeInvalid {
		t.Fatalf("951 characters on TikTok: %v, want invalid", err)
	}
	if _, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), Text: string(long[:950])}); err != nil {
		t.Fatalf("950 characters: %v", err)
	}
	f.advance(48*time.Hour + time.Minute)
	_, _, err = f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), Text: "late"})
	if inbox.ErrorCode(err) != inbox.CodeWindowClosed {
		t.Fatalf("after 48 hours: %v, want window_closed", err)
	}
	if _, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), Text: "note", Private: true}); err != nil {
		t.Fatalf("a private note outside the window: %v", err)
	}
	f.receive(t, "user-1", "in-2", "still there?")
	if _, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), Text: "yes"}); err != nil {
		t.Fatalf("after the customer wrote again: %v", err)
	}
}

func TestWindowCheck(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	for _, tc := range []struct {
		typ  string
		last *time.Time
		open bool
	}{
		{inbox.ChannelWhatsApp, ago(23 * time.Hour), true},
		{inbox.ChannelWhatsApp, ago(25 * time.Hour), false},
		{inbox.ChannelWhatsApp, nil, false},
		{inbox.ChannelTikTok, ago(47 * time.Hour), true},
		{inbox.ChannelTikTok, ago(49 * time.Hour), false},
		{inbox.ChannelSMS, ago(1000 * time.Hour), true},
		{inbox.ChannelSMS, nil, true},
	} {
		err := inbox.WindowCheck(tc.typ, tc.last, now)
		if (err == nil) != tc.open {
			t.Errorf("%s %v: %v, want open=%v", tc.typ, tc.last, err, tc.open)
		}
		if err != nil && inbox.ErrorCode(err) != inbox.CodeWindowClosed {
			t.Errorf("%s: code %s, want window_closed", tc.typ, inbox.ErrorCode(err))
		}
	}
}

func TestMarkReadQueuesAReadReceipt(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelWhatsApp)
	ctx := context.Background()
	f.receive(t, "15551234", "wamid.1", "hi")
	in := f.receive(t, "15551234", "wamid.2", "anyone?")
	if err := f.svc.MarkRead(ctx, f.agent, in.ConversationID); err != nil {
		t.Fatal(err)
	}
	item := f.item(t, in.ID)
	if item.Kind != inbox.OutboxRead || item.ChannelID != f.channel.ID {
		t.Fatalf("receipt item %+v", item)
	}
	if f.wakes == 0 {
		t.Error("the outbox was not woken for the receipt")
	}
	// Reading an already read conversation queues nothing more.
	if err := f.svc.MarkRead(ctx, f.agent, in.ConversationID); err != nil {
		t.Fatal(err)
	}
	due, _, _ := f.svc.Due(ctx, f.clock(), 100)
	if len(due) != 1 || due[0].Message.ID != in.ID {
		t.Fatalf("due %d items, want the one receipt", len(due))
	}
	// The receipt settles without touching the inbound message.
	if err := f.svc.SendResult(ctx, item, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.findItem(t, in.ID); ok {
		t.Fatal("receipt still queued after it was sent")
	}
	if got := f.message(t, in.ConversationID, in.ID); got.Status != inbox.MsgReceived {
		t.Fatalf("inbound message became %s", got.Status)
	}
}

func TestTemporaryFailuresRetryForADayThenFail(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelSMS)
	ctx := context.Background()
	conv := f.receive(t, "+1555", "in-1", "hi").ConversationID
	m, item := f.reply(t, conv, "hello")
	start := f.clock()
	temp := &inbox.SendError{Code: "http_503", Message: "down", Temporary: true}
	for attempt := 1; ; attempt++ {
		if attempt > inbox.MaxSendAttempts {
			t.Fatal("never gave up")
		}
		if err := f.svc.SendResult(ctx, item, "", temp); err != nil {
			t.Fatal(err)
		}
		next, ok := f.findItem(t, m.ID)
		if !ok {
			break
		}
		wait := next.NextAt.Sub(f.clock())
		max := inbox.Backoff(next.Attempts, 0)
		if wait < max/2 || wait > max {
			if !next.NextAt.Equal(start.Add(inbox.RetryWindow)) {
				t.Fatalf("attempt %d waits %v, want within [%v, %v] or the window's end", attempt, wait, max/2, max)
			}
		}
		f.advance(wait)
		item = next
	}
	if el := f.clock().Sub(start); el < inbox.RetryWindow {
		t.Fatalf("gave up after %v, before the %v window", el, inbox.RetryWindow)
	}
	got := f.message(t, conv, m.ID)
	if got.Status != inbox.MsgFailed || got.Error == nil || got.Error.Code != "http_503" {
		t.Fatalf("after the window: %s %+v, want failed with http_503", got.Status, got.Error)
	}
}

func TestDeferredSendIsNotAnAttempt(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelSMS)
	ctx := context.Background()
	conv := f.receive(t, "+1555", "in-1", "hi").ConversationID
	m, item := f.reply(t, conv, "hello")
	err := &inbox.SendError{Code: "channel_busy", Temporary: true, Deferred: true, RetryAfter: 300 * time.Millisecond}
	if err := f.svc.SendResult(ctx, item, "", err); err != nil {
		t.Fatal(err)
	}
	next := f.item(t, m.ID)
	if next.Attempts != 0 || !next.NextAt.Equal(f.clock().Add(300*time.Millisecond)) {
		t.Fatalf("after a deferral: attempts %d next %v", next.Attempts, next.NextAt)
	}
}

func TestBeginSendMarksUncertainAfterACrash(t *testing.T) {
	f := newChanFixture(t, inbox.ChannelSMS)
	ctx := context.Background()
	conv := f.receive(t, "+1555", "in-1", "hi").ConversationID
	m, item := f.reply(t, conv, "hello")
	if u, err := f.svc.BeginSend(ctx, item); err != nil || u {
		t.Fatalf("first BeginSend = %v, %v", u, err)
	}
	// No result recorded (the process stopped): the next attempt knows.
	if u, err := f.svc.BeginSend(ctx, item); err != nil || !u {
		t.Fatalf("second BeginSend = %v, %v; want uncertain", u, err)
	}
	// A recorded temporary failure clears the mark.
	if err := f.svc.SendResult(ctx, item, "", &inbox.SendError{Code: "x", Temporary: true}); err != nil {
		t.Fatal(err)
	}
	// The copy listed before that failure is out of date: it may neither
	// be sent (that would repeat the attempt ahead of its retry time) nor
	// have a result recorded.
	stale := item
	if _, err := f.svc.BeginSend(ctx, stale); inbox.ErrorCode(err) != inbox.CodeConflict {
		t.Fatalf("BeginSend of a stale copy: %v, want conflict", err)
	}
	if err := f.svc.SendResult(ctx, stale, "", &inbox.SendError{Code: "y", Message: "stale failure", Temporary: true}); err != nil {
		t.Fatal(err)
	}
	item = f.item(t, m.ID)
	if item.Attempts != 1 || item.LastError == "stale failure" {
		t.Fatalf("after a stale copy's result: attempts %d, last error %q; want 1 from the recorded failure", item.Attempts, item.LastError)
	}
	if u, err := f.svc.BeginSend(ctx, item); err != nil || u {
		t.Fatalf("after a recorded failure: %v, %v; want certain", u, err)
	}
	if err := f.svc.SendResult(ctx, item, "gw", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.BeginSend(ctx, item); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Fatalf("settled item: %v, want not_found", err)
	}
}

func TestWhatsAppAPIVersionIsChecked(t *testing.T) {
	base := map[string]string{"phone_number_id": "1", "access_token": "t", "app_secret": "s", "verify_token": "v"}
	for v, ok := range map[string]bool{"": true, "v21.0": true, "v9.1": true, "21.0": false, "v21.0/../../x": false, "latest": false} {
		cfg := map[string]string{"api_version": v}
		for k, x := range base {
			cfg[k] = x
		}
		if err := inbox.ValidateChannelConfig(inbox.ChannelWhatsApp, cfg); (err == nil) != ok {
			t.Errorf("api_version %q: %v, want ok=%v", v, err, ok)
		}
	}
}
