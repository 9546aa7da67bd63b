package whatsapp_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/channel/channeltest"
	"github.com/onebox/onebox/internal/channel/whatsapp"
	"github.com/onebox/onebox/internal/inbox"
)

// conversationWith brings in one customer message and returns the
// conversation.
func (r *rig) conversationWith(t *testing.T) inbox.Conversation {
	t.Helper()
	if got := r.post(fixture(t, "text")); got.Status != 200 {
		t.Fatal(got)
	}
	c, _ := r.only(t)
	return c
}

func TestReplyGoesOutAsText(t *testing.T) {
	r := newRig(t, rigOpts{})
	conv := r.conversationWith(t)
	m := r.env.Reply(conv.ID, "We have it in red and green.")
	got := r.env.Events.MessageStatus(t, m.ID, inbox.MsgSent)
	if got.ExternalID != "wamid.OUT1" {
		t.Errorf("external id %q, want wamid.OUT1", got.ExternalID)
	}
	body := r.graph.lastSent()
	want := `{"messaging_product":"whatsapp","recipient_type":"individual","text":{"body":"We have it in red and green.","preview_url":false},"to":"16505551234","type":"text"}`
	if jsonOf(body) != want {
		t.Errorf("sent %s\nwant %s", jsonOf(body), want)
	}
	if calls, _ := r.graph.counts(); calls != 1 {
		t.Errorf("%d calls to the provider, want 1", calls)
	}
}

func TestWindowClosedRefusesAtOnce(t *testing.T) {
	clock := channeltest.NewClock(time.Now())
	r := newRig(t, rigOpts{clock: clock})
	conv := r.conversationWith(t)
	clock.Advance(24*time.Hour + time.Minute)
	res := r.env.Do("POST", "/api/v1/conversations/"+conv.ID+"/messages",
		map[string]string{"Authorization": "Bearer " + r.env.AdminToken},
		[]byte(`{"client_id":"0b6c4c55-9a8f-4f0b-9d4e-2d1f1a7b3c01","text":"Still interested?"}`))
	if res.Status != http.StatusConflict || !strings.Contains(string(res.Body), `"window_closed"`) ||
		!strings.Contains(string(res.Body), "24 hours") {
		t.Fatalf("reply outside the window: %s, want 409 window_closed saying why", res)
	}
	if calls, _ := r.graph.counts(); calls != 0 {
		t.Fatalf("the provider was called %d times", calls)
	}

	// A reply accepted in time whose send comes too late (it waited for a
	// retry) fails with the same code, without a call.
	s := whatsapp.NewSender(whatsapp.SenderConfig{Now: clock.Now})
	last := clock.Now().Add(-25 * time.Hour)
	_, err := s.Send(context.Background(), inbox.Outgoing{
		Channel: inbox.Channel{ID: "c", Type: inbox.ChannelWhatsApp, Config: r.graph.config()},
		Contact: inbox.Contact{Handle: "16505551234"}, Message: inbox.Message{ID: "m", Text: "hi"}, LastInboundAt: &last,
	})
	se, ok := err.(*inbox.SendError)
	if !ok || se.Code != "window_closed" || se.Temporary || !strings.Contains(se.Message, "24 hours") {
		t.Fatalf("late send: %v, want a permanent window_closed", err)
	}
	if calls, _ := r.graph.counts(); calls != 0 {
		t.Fatalf("the provider was called %d times", calls)
	}
}

func TestAttachmentIsUploadedAndSentWithCaption(t *testing.T) {
	r := newRig(t, rigOpts{noSend: true})
	ctx := context.Background()
	tenant := r.env.Tenant.ID
	now := time.Now()
	s := whatsapp.NewSender(whatsapp.SenderConfig{Media: r.env.Media})
	out := func(md inbox.Media, text string) inbox.Outgoing {
		return inbox.Outgoing{
			Channel: inbox.Channel{ID: r.ch.ID, TenantID: tenant, Type: inbox.ChannelWhatsApp, Config: r.graph.config()},
			Contact: inbox.Contact{Handle: "16505551234"}, LastInboundAt: &now,
			Message: inbox.Message{ID: "m1", Kind: inbox.KindImage, Text: text, Media: &md},
		}
	}
	jpeg := []byte("\xff\xd8\xff\xe0 jumper")
	img := r.env.Media.Put(tenant, jpeg, "jumper.jpg", "image/jpeg")
	id, err := s.Send(ctx, out(img, "The blue one"))
	if err != nil || id != "wamid.OUT1" {
		t.Fatalf("send image: %q, %v", id, err)
	}
	up := r.graph.uploads[0]
	if up.typ != "image/jpeg" || up.contentType != "image/jpeg" || up.filename != "jumper.jpg" || !bytes.Equal(up.data, jpeg) {
		t.Errorf("upload %+v", up)
	}
	if got := jsonOf(r.graph.lastSent()); got != `{"image":{"caption":"The blue one","id":"upl-1"},"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"image"}` {
		t.Errorf("sent %s", got)
	}
	pdf := r.env.Media.Put(tenant, []byte("%PDF-1.7"), "invoice.pdf", "application/pdf")
	if _, err := s.Send(ctx, out(pdf, "")); err != nil {
		t.Fatal(err)
	}
	if got := jsonOf(r.graph.lastSent()); got != `{"document":{"filename":"invoice.pdf","id":"upl-2"},"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"document"}` {
		t.Errorf("sent %s", got)
	}
	// Another tenant's media id is not found, and nothing is sent.
	other := r.env.Media.Put("another-tenant", []byte("\xff\xd8\xff\xe0 theirs"), "x.jpg", "image/jpeg")
	_, err = s.Send(ctx, out(other, ""))
	if se, ok := err.(*inbox.SendError); !ok || se.Code != "media_missing" || se.Temporary {
		t.Fatalf("another tenant's media: %v", err)
	}
	if _, err := s.Send(ctx, out(img, strings.Repeat("c", whatsapp.MaxCaption+1))); err == nil || err.(*inbox.SendError).Code != "too_long" {
		t.Fatalf("long caption: %v", err)
	}
	if _, sent := r.graph.counts(); sent != 2 {
		t.Fatalf("%d messages sent, want 2", sent)
	}
}

func TestReadingAConversationMarksItRead(t *testing.T) {
	r := newRig(t, rigOpts{})
	conv := r.conversationWith(t)
	res := r.env.Do("POST", "/api/v1/conversations/"+conv.ID+"/read", map[string]string{"Authorization": "Bearer " + r.env.AdminToken}, nil)
	if res.Status != http.StatusNoContent {
		t.Fatal(res)
	}
	if err := r.env.Result(); err != nil {
		t.Fatalf("read receipt: %v", err)
	}
	r.graph.mu.Lock()
	defer r.graph.mu.Unlock()
	if len(r.graph.reads) != 1 || r.graph.reads[0] != "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=" {
		t.Fatalf("read receipts %v", r.graph.reads)
	}
}

func TestProviderRefusalFailsAtOnce(t *testing.T) {
	r := newRig(t, rigOpts{})
	conv := r.conversationWith(t)
	r.graph.failWith(graphError(http.StatusBadRequest, 131026, "Message undeliverable"))
	m := r.env.Reply(conv.ID, "Hello?")
	got := r.env.Events.MessageStatus(t, m.ID, inbox.MsgFailed)
	if got.Error == nil || got.Error.Code != "131026" || got.Error.Message != "WhatsApp: Message undeliverable: details of 131026" {
		t.Fatalf("error %+v", got.Error)
	}
	if calls, _ := r.graph.counts(); calls != 1 {
		t.Fatalf("%d calls, want 1: a 4xx is not retried", calls)
	}
}

func TestRetriesUntilTheProviderRecovers(t *testing.T) {
	clock := channeltest.NewClock(time.Now())
	r := newRig(t, rigOpts{clock: clock})
	conv := r.conversationWith(t)
	r.graph.failWith(
		answer{status: http.StatusServiceUnavailable, body: `{"error":{"message":"Service temporarily unavailable","code":2}}`},
		answer{status: http.StatusInternalServerError, body: `oops`},
		answer{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "120"}, body: `{}`},
		graphError(http.StatusBadRequest, 131056, "(Business Account, Consumer Account) pair rate limit hit"),
	)
	m := r.env.Reply(conv.ID, "Your parcel left today.")
	for attempt := 1; attempt <= 4; attempt++ {
		if err := r.env.Result(); err == nil {
			t.Fatalf("attempt %d succeeded", attempt)
		}
		item, ok := r.env.Item(m.ID)
		if !ok || item.Attempts != attempt {
			t.Fatalf("after attempt %d: item %+v (queued %v)", attempt, item, ok)
		}
		wait := item.NextAt.Sub(clock.Now())
		if attempt == 3 && wait < 120*time.Second {
			t.Fatalf("Retry-After 120 not honoured: next try in %v", wait)
		}
		clock.Advance(wait)
	}
	if err := r.env.Result(); err != nil {
		t.Fatalf("fifth attempt: %v", err)
	}
	got := r.env.Events.MessageStatus(t, m.ID, inbox.MsgSent)
	if calls, sent := r.graph.counts(); calls != 5 || sent != 1 || got.ExternalID != "wamid.OUT1" {
		t.Fatalf("calls %d sent %d external %q; want 5, 1, wamid.OUT1", calls, sent, got.ExternalID)
	}
}

func TestRestartMidRetrySendsOnce(t *testing.T) {
	clock := channeltest.NewClock(time.Now())
	graph := newFakeGraph(t)
	dir := t.TempDir()
	r := newRig(t, rigOpts{clock: clock, graph: graph, dir: dir})
	conv := r.conversationWith(t)
	graph.failWith(answer{status: http.StatusBadGateway, body: `bad gateway`})
	m := r.env.Reply(conv.ID, "Back soon.")
	if err := r.env.Result(); err == nil {
		t.Fatal("first attempt succeeded")
	}
	item, ok := r.env.Item(m.ID)
	if !ok || item.Attempts != 1 || item.Sending != nil {
		t.Fatalf("before the restart: %+v", item)
	}
	key := r.env.AdminKey
	r.env.Stop()

	clock.Advance(item.NextAt.Sub(clock.Now()))
	r2 := newRig(t, rigOpts{clock: clock, graph: graph, dir: dir, adminKey: key})
	if err := r2.env.Result(); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	r2.env.Events.MessageStatus(t, m.ID, inbox.MsgSent)
	if calls, sent := graph.counts(); calls != 2 || sent != 1 {
		t.Fatalf("calls %d sent %d, want 2 and 1", calls, sent)
	}
}

func TestCrashMidSendIsNotRepeated(t *testing.T) {
	graph := newFakeGraph(t)
	dir := t.TempDir()
	r := newRig(t, rigOpts{graph: graph, dir: dir, noSend: true})
	conv := r.conversationWith(t)
	m := r.env.Reply(conv.ID, "Sending...")
	item, ok := r.env.Item(m.ID)
	if !ok {
		t.Fatal("no outbox item")
	}
	// The process marks the send and stops before learning its outcome.
	if _, err := r.env.Svc.BeginSend(context.Background(), item); err != nil {
		t.Fatal(err)
	}
	key := r.env.AdminKey
	r.env.Stop()

	r2 := newRig(t, rigOpts{graph: graph, dir: dir, adminKey: key})
	if err := r2.env.Result(); err == nil {
		t.Fatal("the uncertain send was made again")
	}
	got := r2.env.Events.MessageStatus(t, m.ID, inbox.MsgFailed)
	if got.Error == nil || got.Error.Code != channel.CodeSendUncertain {
		t.Fatalf("error %+v, want send_uncertain", got.Error)
	}
	if calls, _ := graph.counts(); calls != 0 {
		t.Fatalf("%d calls to the provider, want 0", calls)
	}
}
