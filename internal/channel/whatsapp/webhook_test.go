package whatsapp_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/channel/channeltest"
	"github.com/onebox/onebox/internal/channel/whatsapp"
	"github.com/onebox/onebox/internal/inbox"
)

// rig is a running OneBox with a WhatsApp channel pointing at a fake
// Graph API.
type rig struct {
	env   *channeltest.Env
	graph *fakeGraph
	ch    inbox.Channel
}

type rigOpts struct {
	dir      string
	adminKey string
	graph    *fakeGraph
	maxMedia int64
	noSend   bool
	clock    *channeltest.Clock
}

func newRig(t *testing.T, o rigOpts) *rig {
	t.Helper()
	g := o.graph
	if g == nil {
		g = newFakeGraph(t)
	}
	opts := channeltest.Options{
		Dir: o.dir, AdminKey: o.adminKey,
		Webhooks: func(d channeltest.Deps) map[string]channel.Webhook {
			return map[string]channel.Webhook{inbox.ChannelWhatsApp: whatsapp.NewWebhook(whatsapp.WebhookConfig{
				Inbox: d.Svc, Files: channel.Fetcher{Media: d.Media, Max: o.maxMedia}, Logger: d.Log})}
		},
	}
	if o.clock != nil {
		opts.Now = o.clock.Now
	}
	if !o.noSend {
		opts.Senders = func(d channeltest.Deps) map[string]inbox.Sender {
			return map[string]inbox.Sender{inbox.ChannelWhatsApp: channel.NewGuard(
				whatsapp.NewSender(whatsapp.SenderConfig{Media: d.Media, Now: opts.Now}),
				channel.GuardConfig{Claims: d.Svc, Limits: whatsapp.DefaultLimits})}
		}
	}
	env := channeltest.Start(t, opts)
	r := &rig{env: env, graph: g}
	if o.adminKey == "" {
		r.ch = env.CreateChannel(inbox.ChannelWhatsApp, g.config())
	}
	return r
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post delivers a body signed with the channel's app secret.
func (r *rig) post(body []byte) channeltest.Response {
	return r.postSigned(body, whatsapp.Sign("app-secret-1", body))
}

func (r *rig) postSigned(body []byte, sig string) channeltest.Response {
	h := map[string]string{"Content-Type": "application/json"}
	if sig != "" {
		h[whatsapp.SignatureHeader] = sig
	}
	return r.env.Do("POST", "/webhooks/whatsapp/"+r.ch.ID, h, body)
}

// only returns the single conversation and its messages.
func (r *rig) only(t *testing.T) (inbox.Conversation, []inbox.Message) {
	t.Helper()
	cs := r.env.Conversations()
	if len(cs) != 1 {
		t.Fatalf("%d conversations, want 1", len(cs))
	}
	return cs[0], r.env.Messages(cs[0].ID)
}

func TestWebhookURLComesFromPublicURL(t *testing.T) {
	r := newRig(t, rigOpts{noSend: true})
	if want := r.env.URL + "/webhooks/whatsapp/" + r.ch.ID; r.ch.WebhookURL != want {
		t.Fatalf("webhook_url = %q, want %q", r.ch.WebhookURL, want)
	}
}

func TestSubscriptionCheck(t *testing.T) {
	r := newRig(t, rigOpts{noSend: true})
	get := func(id string, q url.Values) channeltest.Response {
		return r.env.Do("GET", "/webhooks/whatsapp/"+id+"?"+q.Encode(), nil, nil)
	}
	ok := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"verify-me"}, "hub.challenge": {"1158201444"}}
	if got := get(r.ch.ID, ok); got.Status != 200 || string(got.Body) != "1158201444" {
		t.Fatalf("good check: %s, want 200 and the raw challenge", got)
	}
	for name, q := range map[string]url.Values{
		"wrong token": {"hub.mode": {"subscribe"}, "hub.verify_token": {"guess"}, "hub.challenge": {"1"}},
		"wrong mode":  {"hub.mode": {"unsubscribe"}, "hub.verify_token": {"verify-me"}, "hub.challenge": {"1"}},
		"no token":    {"hub.mode": {"subscribe"}, "hub.challenge": {"1"}},
	} {
		if got := get(r.ch.ID, q); got.Status != http.StatusForbidden {
			t.Errorf("%s: %s, want 403", name, got)
		}
	}
	if got := get("no-such-channel", ok); got.Status != http.StatusNotFound {
		t.Errorf("unknown channel: %s, want 404", got)
	}
}

func TestSignatureIsRequired(t *testing.T) {
	r := newRig(t, rigOpts{noSend: true})
	body := fixture(t, "text")
	head := r.env.Head()
	for name, sig := range map[string]string{
		"missing":     "",
		"wrong key":   whatsapp.Sign("another-secret", body),
		"no prefix":   strings.TrimPrefix(whatsapp.Sign("app-secret-1", body), "sha256="),
		"sha1":        "sha1=" + strings.TrimPrefix(whatsapp.Sign("app-secret-1", body), "sha256="),
		"not hex":     "sha256=zz" + strings.Repeat("0", 62),
		"other body":  whatsapp.Sign("app-secret-1", append([]byte(" "), body...)),
		"truncated":   whatsapp.Sign("app-secret-1", body)[:40],
		"only prefix": "sha256=",
	} {
		got := r.postSigned(body, sig)
		if got.Status != http.StatusUnauthorized || !strings.Contains(string(got.Body), `"unauthorized"`) {
			t.Errorf("%s signature: %s, want 401 unauthorized", name, got)
		}
	}
	if h := r.env.Head(); h != head {
		t.Fatalf("event head moved from %d to %d: a refused webhook stored something", head, h)
	}
	// Meta's hex is lower case; an upper-case copy is the same signature.
	upper := "sha256=" + strings.ToUpper(strings.TrimPrefix(whatsapp.Sign("app-secret-1", body), "sha256="))
	if got := r.postSigned(body, upper); got.Status != 200 {
		t.Fatalf("upper-case hex: %s", got)
	}
}

func TestBadRequests(t *testing.T) {
	r := newRig(t, rigOpts{noSend: true})
	head := r.env.Head()
	bad := []byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":"nope"}}]}]}`)
	if got := r.post(bad); got.Status != http.StatusBadRequest {
		t.Errorf("wrong shape: %s, want 400", got)
	}
	if got := r.post([]byte(`{"object":`)); got.Status != http.StatusBadRequest {
		t.Errorf("truncated JSON: %s, want 400", got)
	}
	if !strings.Contains(r.env.Logs(), "body_sha256="+channel.BodyHash(bad)) {
		t.Errorf("a refused body is not logged by its hash:\n%s", r.env.Logs())
	}
	if strings.Contains(r.env.Logs(), `"nope"`) {
		t.Error("the refused body itself was logged")
	}
	big := bytes.Repeat([]byte("x"), 1<<20+100) // just over ONEBOX_MAX_BODY
	if got := r.post(big); got.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", got.Status)
	}
	if h := r.env.Head(); h != head {
		t.Fatalf("event head moved: a refused webhook stored something")
	}
	// A deleted channel's webhook is gone.
	del := r.env.Do("DELETE", "/api/v1/channels/"+r.ch.ID, map[string]string{"Authorization": "Bearer " + r.env.AdminToken}, nil)
	if del.Status != http.StatusNoContent {
		t.Fatalf("delete channel: %s", del)
	}
	if got := r.post(fixture(t, "text")); got.Status != http.StatusNotFound {
		t.Errorf("deleted channel: %s, want 404", got)
	}
}

func TestEveryMessageTypeIsStored(t *testing.T) {
	r := newRig(t, rigOpts{noSend: true})
	jpeg := []byte("\xff\xd8\xff\xe0 a picture of a blue jumper")
	r.graph.media["1003383421387256"] = fakeMedia{mime: "image/jpeg", data: jpeg}
	r.graph.media["1003383421387257"] = fakeMedia{mime: "audio/ogg", data: []byte("OggS voice note")}
	r.graph.media["1003383421387258"] = fakeMedia{mime: "video/mp4", data: []byte("....ftypmp42 video")}
	r.graph.media["1003383421387259"] = fakeMedia{mime: "application/pdf", data: []byte("%PDF-1.7 invoice")}
	r.graph.media["1003383421387260"] = fakeMedia{mime: "image/webp", data: []byte("RIFF....WEBP sticker")}

	cases := []struct {
		fixture, kind, text string
		media               []byte
	}{
		{"text", inbox.KindText, "Does it come in another color?", nil},
		{"image", inbox.KindImage, "This one, in blue", jpeg},
		{"audio", inbox.KindAudio, "", []byte("OggS voice note")},
		{"video", inbox.KindVideo, "It arrived like this", []byte("....ftypmp42 video")},
		{"document", inbox.KindFile, "My invoice", []byte("%PDF-1.7 invoice")},
		{"sticker", inbox.KindImage, "", []byte("RIFF....WEBP sticker")},
		{"location", inbox.KindText, "📍 Meta Headquarters, 1 Hacker Way, Menlo Park, CA 94025 https://maps.google.com/?q=37.483307,-122.148981", nil},
		{"contacts", inbox.KindText, "👤 Barbara J. Johnson, Lucky Shrub, +1 (415) 555-0123, bjohnson@luckyshrub.com", nil},
		{"button", inbox.KindText, "Yes, track my order", nil},
		{"interactive_button", inbox.KindText, "Change the date", nil},
		{"interactive_list", inbox.KindText, "Medium\nChest 96-101 cm", nil},
		{"reaction", inbox.KindText, "[Reacted 👍 to a message]", nil},
		{"unsupported", inbox.KindText, "[Unsupported WhatsApp message: Message type unknown: Message type is currently not supported.; open WhatsApp to see it]", nil},
	}
	for _, c := range cases {
		if got := r.post(fixture(t, c.fixture)); got.Status != 200 {
			t.Fatalf("%s: %s", c.fixture, got)
		}
	}
	conv, msgs := r.only(t)
	if len(msgs) != len(cases) {
		t.Fatalf("%d messages stored, want %d", len(msgs), len(cases))
	}
	if conv.Contact.Name != "Kerry Fisher" || conv.Contact.Handle != "16505551234" || conv.UnreadCount != len(cases) {
		t.Errorf("conversation contact %+v unread %d", conv.Contact, conv.UnreadCount)
	}
	for i, c := range cases {
		m := msgs[i]
		if m.Kind != c.kind || m.Text != c.text || m.Direction != inbox.DirectionIn || m.Status != inbox.MsgReceived {
			t.Errorf("%s: stored kind %q text %q (%s %s), want %q %q", c.fixture, m.Kind, m.Text, m.Direction, m.Status, c.kind, c.text)
		}
		if !strings.HasPrefix(m.ExternalID, "wamid.") {
			t.Errorf("%s: external id %q", c.fixture, m.ExternalID)
		}
		if c.media == nil {
			if m.Media != nil {
				t.Errorf("%s: unexpected media %+v", c.fixture, m.Media)
			}
			continue
		}
		if m.Media == nil {
			t.Errorf("%s: no media", c.fixture)
			continue
		}
		if got := r.env.Media.Bytes(r.env.Tenant.ID, m.Media.ID); !bytes.Equal(got, c.media) {
			t.Errorf("%s: kept %q, want %q", c.fixture, got, c.media)
		}
	}
	if msgs[4].Media != nil && msgs[4].Media.Name != "invoice-2291.pdf" {
		t.Errorf("document name = %q", msgs[4].Media.Name)
	}

	// Meta redelivers: every message is stored once, no attachment is
	// fetched again.
	before := r.env.Head()
	r.graph.mu.Lock()
	downloads := r.graph.downloads
	r.graph.mu.Unlock()
	for _, c := range cases {
		if got := r.post(fixture(t, c.fixture)); got.Status != 200 {
			t.Fatalf("redelivered %s: %s", c.fixture, got)
		}
	}
	if _, again := r.only(t); len(again) != len(cases) {
		t.Fatalf("after redelivery %d messages, want %d", len(again), len(cases))
	}
	if h := r.env.Head(); h != before {
		t.Errorf("redelivery wrote %d events", h-before)
	}
	r.graph.mu.Lock()
	defer r.graph.mu.Unlock()
	if r.graph.downloads != downloads {
		t.Errorf("redelivery downloaded %d attachments again", r.graph.downloads-downloads)
	}
}

func TestBatchOfEntriesAndForeignNumbers(t *testing.T) {
	r := newRig(t, rigOpts{noSend: true})
	if got := r.post(fixture(t, "batch")); got.Status != 200 {
		t.Fatal(got)
	}
	cs := r.env.Conversations()
	if len(cs) != 2 {
		t.Fatalf("%d conversations, want 2 (the other number's message is not this channel's)", len(cs))
	}
	names := map[string]string{}
	for _, c := range cs {
		names[c.Contact.Handle] = c.Contact.Name
		for _, m := range r.env.Messages(c.ID) {
			if m.Text == "not for this channel" {
				t.Error("a message for another phone number was stored")
			}
		}
	}
	if names["16505551234"] != "Kerry Fisher" || names["447700900123"] != "Raj" {
		t.Errorf("contact names %v", names)
	}
	if !strings.Contains(r.env.Logs(), "another phone number") {
		t.Error("the foreign change was not logged")
	}
}

func TestAttachmentProblemsLeaveANote(t *testing.T) {
	r := newRig(t, rigOpts{noSend: true, maxMedia: 64})
	r.graph.media["1003383421387256"] = fakeMedia{mime: "image/jpeg", data: bytes.Repeat([]byte("j"), 65)}
	// video: Graph says small but sends more (the limit still holds)
	r.graph.media["1003383421387258"] = fakeMedia{mime: "video/mp4", data: bytes.Repeat([]byte("v"), 500), size: "10", chunked: true}
	// document: Graph does not know the id
	for _, name := range []string{"image", "video", "document"} {
		if got := r.post(fixture(t, name)); got.Status != 200 {
			t.Fatalf("%s: %s", name, got)
		}
	}
	_, msgs := r.only(t)
	want := []string{
		"[Image not available: it is 65 bytes, over the 64 bytes limit]\nThis one, in blue",
		"[Video not available: it is over the 64 bytes limit]\nIt arrived like this",
		"[Document not available: WhatsApp answered 400 for the attachment]\nMy invoice",
	}
	for i, m := range msgs {
		if m.Kind != inbox.KindText || m.Media != nil || m.Text != want[i] {
			t.Errorf("message %d: %s %q %+v, want text %q", i, m.Kind, m.Text, m.Media, want[i])
		}
	}
}

func TestStatusesOutOfOrderAndFailed(t *testing.T) {
	r := newRig(t, rigOpts{})
	if got := r.post(fixture(t, "text")); got.Status != 200 {
		t.Fatal(got)
	}
	conv, _ := r.only(t)
	first := r.env.Reply(conv.ID, "We have it in red and green.")
	r.env.Events.MessageStatus(t, first.ID, inbox.MsgSent)
	second := r.env.Reply(conv.ID, "Shall I reserve one?")
	r.env.Events.MessageStatus(t, second.ID, inbox.MsgSent)

	// wamid.OUT1 is the first reply: read arrives before delivered and a
	// late sent, and read stays.
	for _, name := range []string{"status_read", "status_delivered", "status_sent", "status_read"} {
		if got := r.post(fixture(t, name)); got.Status != 200 {
			t.Fatalf("%s: %s", name, got)
		}
	}
	for _, m := range r.env.Messages(conv.ID) {
		if m.ID == first.ID && (m.Status != inbox.MsgRead || m.ExternalID != "wamid.OUT1") {
			t.Fatalf("first reply: %s %q, want read wamid.OUT1", m.Status, m.ExternalID)
		}
	}
	if n := r.env.Events.Count(channeltest.IsMessage(inbox.EventMessageUpdated, first.ID)); n != 2 {
		t.Errorf("%d updates of the first reply, want 2 (sent, read)", n)
	}
	// wamid.OUT2 fails, with Meta's error kept.
	if got := r.post(fixture(t, "status_failed")); got.Status != 200 {
		t.Fatal(got)
	}
	m := r.env.Events.MessageStatus(t, second.ID, inbox.MsgFailed)
	if m.Error == nil || m.Error.Code != "131047" || !strings.HasPrefix(m.Error.Message, "Re-engagement message: Message failed to send because more than 24 hours") {
		t.Fatalf("failed error = %+v", m.Error)
	}
	// A status about a message sent from another app is kept, not an error.
	other := bytes.ReplaceAll(fixture(t, "status_delivered"), []byte("wamid.OUT1"), []byte("wamid.FROM-PHONE"))
	if got := r.post(other); got.Status != 200 {
		t.Fatalf("status for an unknown message: %s", got)
	}
}

func TestParseFixtures(t *testing.T) {
	n, err := whatsapp.Parse(fixture(t, "status_failed"), "106540352242922")
	if err != nil || len(n.Statuses) != 1 || len(n.Messages) != 0 {
		t.Fatalf("status_failed: %+v, %v", n, err)
	}
	s := n.Statuses[0]
	if s.ExternalID != "wamid.OUT2" || s.Status != inbox.MsgFailed || s.Error.Code != "131047" {
		t.Fatalf("status %+v", s)
	}
	n, err = whatsapp.Parse(fixture(t, "image"), "106540352242922")
	if err != nil || len(n.Messages) != 1 {
		t.Fatalf("image: %+v, %v", n, err)
	}
	m := n.Messages[0]
	if m.MediaID != "1003383421387256" || m.Mime != "image/jpeg" || m.ContactName != "Kerry Fisher" ||
		!m.At.Equal(time.Unix(1749416383, 0)) {
		t.Fatalf("image message %+v", m)
	}
	if n, err := whatsapp.Parse(fixture(t, "image"), "someone-else"); err != nil || len(n.Messages) != 0 || n.Foreign != 1 {
		t.Fatalf("other number: %+v, %v", n, err)
	}
	if n, err := whatsapp.Parse([]byte(`{"object":"page","entry":[]}`), "1"); err != nil || len(n.Messages) != 0 {
		t.Fatalf("another product's webhook: %+v, %v", n, err)
	}
	for _, bad := range []string{``, `[]`, `{"entry":{}}`, `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"messages":[{"type":"text"}]}}]}]}`} {
		if _, err := whatsapp.Parse([]byte(bad), "1"); inbox.ErrorCode(err) != inbox.CodeInvalid {
			t.Errorf("Parse(%q) = %v, want invalid", bad, err)
		}
	}
}

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account"}`)
	good := whatsapp.Sign("s3cret", body)
	if err := whatsapp.VerifySignature("s3cret", good, body); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	for _, sig := range []string{"", "sha256=", good + "00", good[:len(good)-2], "md5=" + good[7:], whatsapp.Sign("other", body)} {
		err := whatsapp.VerifySignature("s3cret", sig, body)
		if inbox.ErrorCode(err) != inbox.CodeUnauthorized {
			t.Errorf("VerifySignature(%q) = %v, want unauthorized", sig, err)
		}
	}
	if err := whatsapp.VerifySignature("", whatsapp.Sign("", body), body); err == nil {
		t.Error("an empty app secret verified a signature")
	}
}

// jsonOf is a test's view of a sent body.
func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
