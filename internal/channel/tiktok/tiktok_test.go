package tiktok_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/channel/channeltest"
	"github.com/onebox/onebox/internal/channel/tiktok"
	"github.com/onebox/onebox/internal/inbox"
)

type rig struct {
	env *channeltest.Env
	api *fakeTikTok
	ch  inbox.Channel
}

func newRig(t *testing.T, send bool) *rig {
	t.Helper()
	api := newFakeTikTok(t)
	opts := channeltest.Options{
		Webhooks: func(d channeltest.Deps) map[string]channel.Webhook {
			return map[string]channel.Webhook{inbox.ChannelTikTok: tiktok.NewWebhook(tiktok.WebhookConfig{Inbox: d.Svc, Files: channel.Fetcher{Media: d.Media}, Logger: d.Log})}
		},
	}
	if send {
		opts.Senders = func(d channeltest.Deps) map[string]inbox.Sender {
			return map[string]inbox.Sender{inbox.ChannelTikTok: channel.NewGuard(
				tiktok.NewSender(tiktok.SenderConfig{Media: d.Media, Aliases: d.Svc}),
				channel.GuardConfig{Claims: d.Svc, Limits: tiktok.DefaultLimits})}
		}
	}
	env := channeltest.Start(t, opts)
	return &rig{env: env, api: api, ch: env.CreateChannel(inbox.ChannelTikTok, api.config())}
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *rig) post(body []byte) channeltest.Response {
	return r.postSigned(body, tiktok.Sign("tt-secret", body, time.Now()))
}

func (r *rig) postSigned(body []byte, sig string) channeltest.Response {
	h := map[string]string{"Content-Type": "application/json"}
	if sig != "" {
		h[tiktok.SignatureHeader] = sig
	}
	return r.env.Do("POST", "/webhooks/tiktok/"+r.ch.ID, h, body)
}

func (r *rig) only(t *testing.T) (inbox.Conversation, []inbox.Message) {
	t.Helper()
	cs := r.env.Conversations()
	if len(cs) != 1 {
		t.Fatalf("%d conversations, want 1", len(cs))
	}
	return cs[0], r.env.Messages(cs[0].ID)
}

func TestSignature(t *testing.T) {
	body := fixture(t, "receive_text")
	now := time.Now()
	good := tiktok.Sign("tt-secret", body, now)
	if err := tiktok.VerifySignature("tt-secret", good, body, now); err != nil {
		t.Fatalf("good: %v", err)
	}
	if err := tiktok.VerifySignature("tt-secret", good, body, now.Add(4*time.Minute)); err != nil {
		t.Fatalf("4 minutes later: %v", err)
	}
	ts := fmt.Sprint(now.Unix())
	for name, c := range map[string]struct {
		header string
		at     time.Time
	}{
		"missing":         {"", now},
		"stale":           {good, now.Add(6 * time.Minute)},
		"from the future": {good, now.Add(-6 * time.Minute)},
		"wrong secret":    {tiktok.Sign("other", body, now), now},
		"no timestamp":    {"s=" + strings.SplitN(good, "s=", 2)[1], now},
		"no signature":    {"t=" + ts, now},
		"garbage":         {"t=abc,s=def", now},
		"other body":      {tiktok.Sign("tt-secret", []byte("{}"), now), now},
	} {
		if err := tiktok.VerifySignature("tt-secret", c.header, body, c.at); inbox.ErrorCode(err) != inbox.CodeUnauthorized {
			t.Errorf("%s: %v, want unauthorized", name, err)
		}
	}
	if err := tiktok.VerifySignature("", tiktok.Sign("", body, now), body, now); err == nil {
		t.Error("an empty secret verified")
	}
}

func TestSignatureOverHTTP(t *testing.T) {
	r := newRig(t, false)
	body := fixture(t, "receive_text")
	head := r.env.Head()
	for name, sig := range map[string]string{
		"missing": "",
		"stale":   tiktok.Sign("tt-secret", body, time.Now().Add(-10*time.Minute)),
		"bad":     tiktok.Sign("nope", body, time.Now()),
	} {
		if got := r.postSigned(body, sig); got.Status != http.StatusUnauthorized {
			t.Errorf("%s: %s, want 401", name, got)
		}
	}
	if r.env.Head() != head {
		t.Fatal("a refused webhook stored something")
	}
	if got := r.post([]byte(`{"event":"im_receive_msg","content":"{not json"}`)); got.Status != http.StatusBadRequest {
		t.Errorf("malformed content: %s, want 400", got)
	}
	if got := r.env.Do("POST", "/webhooks/tiktok/unknown", map[string]string{tiktok.SignatureHeader: tiktok.Sign("tt-secret", body, time.Now())}, body); got.Status != http.StatusNotFound {
		t.Errorf("unknown channel: %s, want 404", got)
	}
}

func TestInboundMessages(t *testing.T) {
	r := newRig(t, false)
	jpeg := []byte("\xff\xd8\xff\xe0 hoodie photo")
	r.api.images["v09ea0g40000ci2qk0jc77u8"] = jpeg
	cases := []struct{ fixture, kind, text string }{
		{"receive_text", inbox.KindText, "Is the green hoodie back in stock?"},
		{"receive_image", inbox.KindImage, ""},
		{"receive_share_post", inbox.KindText, "Shared a post: https://www.tiktok.com/embed/v2/7412345678901234567"},
		{"receive_sticker", inbox.KindText, "[Sticker]"},
		{"receive_unsupported", inbox.KindText, `[Unsupported TikTok message of type "video_call"; open TikTok to see it]`},
	}
	for _, c := range cases {
		if got := r.post(fixture(t, c.fixture)); got.Status != 200 {
			t.Fatalf("%s: %s", c.fixture, got)
		}
	}
	conv, msgs := r.only(t)
	if conv.Contact.Handle != "7290014565934532613" || conv.Contact.Name != "mia.styles" || conv.UnreadCount != len(cases) {
		t.Errorf("contact %+v unread %d", conv.Contact, conv.UnreadCount)
	}
	if len(msgs) != len(cases) {
		t.Fatalf("%d messages, want %d", len(msgs), len(cases))
	}
	for i, c := range cases {
		if msgs[i].Kind != c.kind || msgs[i].Text != c.text || msgs[i].Direction != inbox.DirectionIn {
			t.Errorf("%s: %s %q %s", c.fixture, msgs[i].Kind, msgs[i].Text, msgs[i].Direction)
		}
	}
	if md := msgs[1].Media; md == nil || !bytes.Equal(r.env.Media.Bytes(r.env.Tenant.ID, md.ID), jpeg) || md.Mime != "image/jpeg" {
		t.Errorf("image media %+v", msgs[1].Media)
	}
	// Redelivered: stored once.
	head := r.env.Head()
	for _, c := range cases {
		if got := r.post(fixture(t, c.fixture)); got.Status != 200 {
			t.Fatal(got)
		}
	}
	if r.env.Head() != head {
		t.Fatal("a redelivery wrote events")
	}
}

func TestEchoesAndAppSends(t *testing.T) {
	r := newRig(t, true)
	if got := r.post(fixture(t, "receive_text")); got.Status != 200 {
		t.Fatal(got)
	}
	conv, _ := r.only(t)
	m := r.env.Reply(conv.ID, "Yes! Restocked this morning.")
	sent := r.env.Events.MessageStatus(t, m.ID, inbox.MsgSent)
	if sent.ExternalID != "tt-out-1" {
		t.Fatalf("external id %q", sent.ExternalID)
	}
	r.api.mu.Lock()
	body, _ := json.Marshal(r.api.sent[0])
	r.api.mu.Unlock()
	if want := `{"business_id":"7374937459228475397","message_type":"TEXT","recipient":"u5JhpselBAhoPOlnH0tZ9y07kg==","recipient_type":"CONVERSATION","text":{"body":"Yes! Restocked this morning."}}`; string(body) != want {
		t.Errorf("sent %s\nwant %s", body, want)
	}
	// TikTok echoes our send: nothing new.
	head := r.env.Head()
	if got := r.post(fixture(t, "send_echo")); got.Status != 200 {
		t.Fatal(got)
	}
	if r.env.Head() != head {
		t.Fatal("the echo of our own send was stored again")
	}
	// A message typed in TikTok's app shows up as outbound.
	if got := r.post(fixture(t, "send_app")); got.Status != 200 {
		t.Fatal(got)
	}
	_, msgs := r.only(t)
	last := msgs[len(msgs)-1]
	if len(msgs) != 3 || last.Text != "Sent from the TikTok app" || last.Direction != inbox.DirectionOut || last.Status != inbox.MsgSent {
		t.Fatalf("messages %+v", msgs)
	}
	if got := r.post(fixture(t, "send_app")); got.Status != 200 || len(r.env.Messages(conv.ID)) != 3 {
		t.Fatal("a redelivered app send was stored twice")
	}

	// The customer reads up to now: every reply becomes read.
	read := bytes.Replace(fixture(t, "mark_read"), []byte("1749416500000"), []byte(fmt.Sprint(time.Now().Add(time.Second).UnixMilli())), 1)
	if got := r.post(read); got.Status != 200 {
		t.Fatal(got)
	}
	r.env.Events.MessageStatus(t, m.ID, inbox.MsgRead)
	r.env.Events.MessageStatus(t, last.ID, inbox.MsgRead)
}

func TestSendRules(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	now := time.Now()
	s := tiktok.NewSender(tiktok.SenderConfig{Media: r.env.Media, Aliases: r.env.Svc})
	out := func(text string, last time.Time, md *inbox.Media) inbox.Outgoing {
		return inbox.Outgoing{
			Channel: inbox.Channel{ID: r.ch.ID, TenantID: r.env.Tenant.ID, Type: inbox.ChannelTikTok, Config: r.api.config()},
			Contact: inbox.Contact{Handle: "u1", ReplyTo: "conv-1"}, LastInboundAt: &last,
			Message: inbox.Message{ID: "m1", Text: text, Media: md},
		}
	}
	code := func(err error) string {
		if se, ok := err.(*inbox.SendError); ok {
			return se.Code
		}
		return fmt.Sprint(err)
	}
	if _, err := s.Send(ctx, out("hello", now.Add(-49*time.Hour), nil)); code(err) != "window_closed" {
		t.Errorf("after 48 hours: %v", err)
	}
	if _, err := s.Send(ctx, out(strings.Repeat("a", 951), now, nil)); code(err) != "too_long" {
		t.Errorf("951 characters: %v", err)
	}
	if calls, _ := r.api.counts(); calls != 0 {
		t.Fatalf("the API was called %d times for refused replies", calls)
	}
	// A non-zero code is a failure with TikTok's message kept.
	r.api.mu.Lock()
	r.api.failNext = []string{`{"code":40001,"message":"The recipient is not available.","request_id":"r"}`,
		`{"code":40100,"message":"Too many requests.","request_id":"r"}`}
	r.api.mu.Unlock()
	_, err := s.Send(ctx, out("hello", now, nil))
	if se, ok := err.(*inbox.SendError); !ok || se.Code != "40001" || se.Temporary || se.Message != "TikTok: The recipient is not available." {
		t.Errorf("code 40001: %#v", err)
	}
	if _, err := s.Send(ctx, out("hello", now, nil)); err == nil || !err.(*inbox.SendError).Temporary {
		t.Errorf("rate limited: %v, want temporary", err)
	}
	// An image goes first, then its text.
	jpeg := []byte("\xff\xd8\xff\xe0 photo")
	img := r.env.Media.Put(r.env.Tenant.ID, jpeg, "p.jpg", "image/jpeg")
	id, err := s.Send(ctx, out("Here it is", now, &img))
	if err != nil || id != "tt-out-1" {
		t.Fatalf("image: %q %v", id, err)
	}
	r.api.mu.Lock()
	defer r.api.mu.Unlock()
	if len(r.api.sent) != 2 || r.api.sent[0]["message_type"] != "IMAGE" || r.api.sent[1]["message_type"] != "TEXT" || !bytes.Equal(r.api.uploads[0], jpeg) {
		t.Fatalf("sent %v", r.api.sent)
	}
}

func TestParse(t *testing.T) {
	ev, err := tiktok.Parse(fixture(t, "mark_read"))
	if err != nil || ev.Read == nil || ev.Read.UserID != "7290014565934532613" || !ev.Read.Until.Equal(time.UnixMilli(1749416500000)) {
		t.Fatalf("mark_read: %+v %v", ev, err)
	}
	ev, err = tiktok.Parse(fixture(t, "receive_text"))
	if err != nil || ev.Message == nil || ev.Message.ConversationID != "u5JhpselBAhoPOlnH0tZ9y07kg==" || !ev.Message.At.Equal(time.UnixMilli(1749416383123)) {
		t.Fatalf("receive_text: %+v %v", ev.Message, err)
	}
	// The content may come as an object too.
	obj := []byte(`{"event":"im_receive_msg","user_openid":"b","content":{"conversation_id":"c","message_id":"m","type":"text","text":{"body":"hi"},"from_user":{"id":"u"},"to_user":{"id":"b"}}}`)
	if ev, err := tiktok.Parse(obj); err != nil || ev.Message.Text != "hi" {
		t.Fatalf("object content: %+v %v", ev, err)
	}
	if ev, err := tiktok.Parse([]byte(`{"event":"authorization.removed","content":"{}"}`)); err != nil || ev.Message != nil || ev.Read != nil {
		t.Fatalf("other event: %+v %v", ev, err)
	}
	for _, bad := range []string{`[]`, `{"event":"im_receive_msg","content":"{}"}`, `{"event":"im_mark_read_msg","content":"{\"from_user\":{\"id\":\"u\"}}"}`, `{"event":"im_receive_msg","content":5}`} {
		if _, err := tiktok.Parse([]byte(bad)); inbox.ErrorCode(err) != inbox.CodeInvalid {
			t.Errorf("Parse(%s) = %v, want invalid", bad, err)
		}
	}
}
