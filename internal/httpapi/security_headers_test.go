package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/channel/whatsapp"
	"github.com/onebox/onebox/internal/inbox"
)

// TestSecurityHeadersEverywhere: the framing, sniffing and referrer headers
// are on every kind of response, not only on the PWA's HTML.
func TestSecurityHeadersEverywhere(t *testing.T) {
	h := newHarness(t, withConfig(func(c *Config) { c.Static = pwa() }))
	tm := h.newTeam("Acme")
	convID, _ := h.receive(tm, "+15550002", "hi")

	for what, r := range map[string]*response{
		"html index":         h.want(h.req("GET", "/", "", nil), 200),
		"html app route":     h.want(h.req("GET", "/conversations/42", "", nil), 200),
		"static js":          h.want(h.req("GET", "/app.js", "", nil), 200),
		"static png":         h.want(h.req("GET", "/icons/icon.png", "", nil), 200),
		"service worker":     h.want(h.req("GET", "/sw.js", "", nil), 200),
		"static 304":         h.req("GET", "/sw.js", "", nil, "If-None-Match", h.req("GET", "/sw.js", "", nil).header.Get("ETag")),
		"api list":           h.want(h.req("GET", "/api/v1/conversations", tm.agentToken, nil), 200),
		"api get":            h.want(h.req("GET", "/api/v1/conversations/"+convID, tm.agentToken, nil), 200),
		"api create":         h.want(h.req("POST", "/api/v1/conversations/"+convID+"/messages", tm.agentToken, map[string]any{"client_id": newClientID(), "text": "hello"}), 201),
		"api 400":            h.want(h.req("POST", "/api/v1/agents", tm.adminToken, raw(`{"name":`)), 400),
		"api 401":            h.want(h.req("GET", "/api/v1/conversations", "", nil), 401),
		"api 403":            h.want(h.req("GET", "/api/v1/channels", tm.agentToken, nil), 403),
		"api 404":            h.want(h.req("GET", "/api/v1/conversations/nope", tm.agentToken, nil), 404),
		"unknown api path":   h.want(h.req("GET", "/api/v1/nope", "", nil), 404),
		"missing static":     h.want(h.req("GET", "/missing.png", "", nil), 404),
		"webhook 404":        h.want(h.req("POST", "/webhooks/whatsapp/nope", "", raw(`{}`)), 404),
		"health":             h.want(h.req("GET", "/healthz", "", nil), 200),
		"metrics":            h.want(h.req("GET", "/metrics", "", nil), 200),
		"sign-in 401":        h.want(h.req("POST", "/api/v1/session", "", map[string]any{"access_key": "wrong"}), 401),
		"websocket disabled": h.req("GET", "/api/v1/ws", "", nil),
	} {
		checkSecurityHeaders(t, what, r)
	}
}

// TestNoSecretsInWebhookAndChannelLogs goes with TestNoSecretsInLogs: a
// sign-in, a key issued, channels created with secrets and webhooks with
// signatures (valid and forged) leave none of those values in the log.
func TestNoSecretsInWebhookAndChannelLogs(t *testing.T) {
	h := newHarness(t, withConfig(func(c *Config) {
		c.Webhooks = map[string]channel.Webhook{
			inbox.ChannelWhatsApp: whatsapp.NewWebhook(whatsapp.WebhookConfig{Inbox: c.Service, Logger: c.Logger}),
		}
	}))
	tm := h.newTeam("Acme")

	var issued struct {
		AccessKey string `json:"access_key"`
	}
	h.want(h.req("POST", "/api/v1/agents/"+tm.agentID+"/keys", tm.adminToken, map[string]any{"label": "phone"}), 201).json(t, &issued)
	if issued.AccessKey == "" {
		t.Fatal("no access key issued")
	}
	token := h.signIn(issued.AccessKey)
	h.req("POST", "/api/v1/session", "", map[string]any{"access_key": "wrong-" + issued.AccessKey})

	const (
		appSecret   = "wa-app-secret-7f3c9a"
		waToken     = "wa-access-token-51b2e8"
		verifyToken = "wa-verify-token-c4d1"
		smsAuth     = "sms-auth-token-93aa0e"
		smsHook     = "sms-webhook-secret-1d7f"
	)
	waID := h.providerChannel(tm, "whatsapp", map[string]any{
		"phone_number_id": "106540352242922", "access_token": waToken, "app_secret": appSecret, "verify_token": verifyToken})
	h.providerChannel(tm, "sms", map[string]any{"send_url": "http://127.0.0.1:9/send", "auth_token": smsAuth, "webhook_secret": smsHook})
	// A rejected channel create must not log the secrets it carried either.
	h.req("POST", "/api/v1/channels", tm.adminToken, map[string]any{"type": "sms", "name": "x",
		"config": map[string]any{"send_url": "ftp://x", "auth_token": smsAuth, "webhook_secret": smsHook}})

	h.req("GET", "/webhooks/whatsapp/"+waID+"?hub.mode=subscribe&hub.challenge=777&hub.verify_token="+verifyToken, "", nil)
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Customer"},"wa_id":"16505550001"}],"messages":[{"from":"16505550001","id":"wamid.secret-test-1","timestamp":"1749416383","text":{"body":"Hello"},"type":"text"}]},"field":"messages"}]}]}`)
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	h.want(h.req("POST", "/webhooks/whatsapp/"+waID, "", raw(body), "X-Hub-Signature-256", sig), 200)
	forged := "sha256=" + strings.Repeat("ab", 32)
	h.req("POST", "/webhooks/whatsapp/"+waID, "", raw(body), "X-Hub-Signature-256", forged)
	h.req("GET", "/api/v1/conversations", token, nil)

	logs := h.logs.String()
	for name, secret := range map[string]string{
		"issued access key": issued.AccessKey, "session token": token, "admin key": tm.adminKey, "admin token": tm.adminToken,
		"app secret": appSecret, "channel access token": waToken, "verify token": verifyToken,
		"sms auth token": smsAuth, "sms webhook secret": smsHook,
		"signature": strings.TrimPrefix(sig, "sha256="), "forged signature": strings.TrimPrefix(forged, "sha256="),
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s %q", name, secret)
		}
	}
	if !strings.Contains(logs, `"route":"/webhooks/whatsapp/:channel_id"`) {
		t.Errorf("the log lacks the webhook's access line:\n%s", logs)
	}
}
