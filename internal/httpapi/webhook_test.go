package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// recordingWebhook is an adapter that records what it was handed and
// answers what the test says.
type recordingWebhook struct {
	mu     sync.Mutex
	calls  []channel.Request
	chans  []inbox.Channel
	answer channel.Response
	err    error
}

func (w *recordingWebhook) Handle(ctx context.Context, ch inbox.Channel, r channel.Request) (channel.Response, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r.Body = append([]byte(nil), r.Body...)
	r.Header = func(string) string { return "" }
	w.calls = append(w.calls, r)
	w.chans = append(w.chans, ch)
	return w.answer, w.err
}

func (h *harness) providerChannel(tm *team, typ string, cfg map[string]any) string {
	h.t.Helper()
	var ch struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	h.want(h.req("POST", "/api/v1/channels", tm.adminToken, map[string]any{"type": typ, "name": typ, "config": cfg}), 201).json(h.t, &ch)
	return ch.Channel.ID
}

func TestWebhookDispatch(t *testing.T) {
	wa := &recordingWebhook{answer: channel.Text(200, "12345")}
	sms := &recordingWebhook{err: inbox.Errorf(inbox.CodeInvalid, "the body is not a gateway callback")}
	var headerSeen string
	h := newHarness(t, withConfig(func(c *Config) {
		c.Webhooks = map[string]channel.Webhook{
			inbox.ChannelWhatsApp: channel.Webhook(headerPeek{wa, &headerSeen}),
			inbox.ChannelSMS:      sms,
		}
	}))
	tm := h.newTeam("Acme")
	waID := h.providerChannel(tm, "whatsapp", map[string]any{"phone_number_id": "1", "access_token": "t", "app_secret": "s", "verify_token": "v"})
	smsID := h.providerChannel(tm, "sms", map[string]any{"send_url": "http://127.0.0.1:1/", "auth_token": "t", "webhook_secret": "s"})
	ttID := h.providerChannel(tm, "tiktok", map[string]any{"business_id": "b", "access_token": "t", "client_secret": "s"})

	r := h.req("GET", "/webhooks/whatsapp/"+waID+"?hub.mode=subscribe&hub.challenge=12345", "", nil, "X-Hub-Signature-256", "sha256=ab")
	if r.status != 200 || string(r.body) != "12345" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("answer not relayed: %s %q", r, r.header.Get("Content-Type"))
	}
	r = h.req("POST", "/webhooks/whatsapp/"+waID, "", raw(`{"raw": true}`), "X-Hub-Signature-256", "sha256=cd")
	h.want(r, 200)
	wa.mu.Lock()
	if len(wa.calls) != 2 || wa.calls[0].Method != "GET" || wa.calls[0].Query.Get("hub.mode") != "subscribe" ||
		wa.calls[1].Method != "POST" || string(wa.calls[1].Body) != `{"raw": true}` || wa.calls[1].Received.IsZero() {
		t.Errorf("requests handed over: %+v", wa.calls)
	}
	if wa.chans[1].ID != waID || wa.chans[1].Config["app_secret"] != "s" || wa.chans[1].TenantID != tm.tenantID {
		t.Errorf("channel handed over: %+v", wa.chans[1])
	}
	wa.mu.Unlock()
	if headerSeen != "sha256=cd" {
		t.Errorf("signature header seen as %q", headerSeen)
	}

	// A channel of another type, an unknown one, a deleted one: 404.
	checkErr(t, h.req("POST", "/webhooks/sms/"+waID, "", raw(`{}`)), 404, "not_found")
	checkErr(t, h.req("POST", "/webhooks/whatsapp/nope", "", raw(`{}`)), 404, "not_found")
	// No adapter for the type: 501.
	checkErr(t, h.req("POST", "/webhooks/tiktok/"+ttID, "", raw(`{}`)), 501, "not_implemented")
	// Refused bodies are logged by hash, not content.
	checkErr(t, h.req("POST", "/webhooks/sms/"+smsID, "", raw(`{"text":"secret order details"}`)), 400, "invalid")
	if logs := h.logs.String(); !strings.Contains(logs, channel.BodyHash([]byte(`{"text":"secret order details"}`))) || strings.Contains(logs, "secret order details") {
		t.Errorf("refusal log: %s", logs)
	}
	checkErr(t, h.req("POST", "/webhooks/whatsapp/"+waID, "", raw(`{}`), "Content-Encoding", "gzip"), 400, "invalid")
	h.want(h.req("DELETE", "/api/v1/channels/"+waID, tm.adminToken, nil), http.StatusNoContent)
	checkErr(t, h.req("POST", "/webhooks/whatsapp/"+waID, "", raw(`{}`)), 404, "not_found")
}

// headerPeek reads the signature header during Handle, the only time
// the request is valid.
type headerPeek struct {
	next *recordingWebhook
	seen *string
}

func (p headerPeek) Handle(ctx context.Context, ch inbox.Channel, r channel.Request) (channel.Response, error) {
	*p.seen = r.Header("X-Hub-Signature-256")
	return p.next.Handle(ctx, ch, r)
}
