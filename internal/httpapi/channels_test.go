package httpapi

import (
	"strings"
	"testing"
)

type channelJSON struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Name       string `json:"name"`
	WebhookURL string `json:"webhook_url"`
	CreatedAt  string `json:"created_at"`
}

func (h *harness) channels(token string) []channelJSON {
	h.t.Helper()
	var got struct {
		Channels []channelJSON `json:"channels"`
	}
	h.want(h.req("GET", "/api/v1/channels", token, nil), 200).json(h.t, &got)
	return got.Channels
}

func TestChannels(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")

	sms := map[string]any{"type": "sms", "name": "Support SMS", "config": map[string]string{
		"send_url": "http://127.0.0.1:9/send", "auth_token": "sms-auth-SECRET", "webhook_secret": "hook-SECRET",
	}}
	r := h.want(h.req("POST", "/api/v1/channels", tm.adminToken, sms), 201)
	var created struct {
		Channel channelJSON `json:"channel"`
	}
	r.json(t, &created)
	ch := created.Channel
	if ch.ID == "" || ch.Type != "sms" || ch.Name != "Support SMS" || ch.CreatedAt == "" {
		t.Errorf("created = %s", r.body)
	}
	if want := h.url + "/webhooks/sms/" + ch.ID; ch.WebhookURL != want {
		t.Errorf("webhook_url = %q, want %q", ch.WebhookURL, want)
	}
	list := h.channels(tm.adminToken)
	if len(list) != 2 || list[0].ID != tm.channelID || list[1].ID != ch.ID {
		t.Errorf("channels = %+v, want the demo channel then the SMS one", list)
	}
	for _, body := range [][]byte{r.body, h.req("GET", "/api/v1/channels", tm.adminToken, nil).body} {
		if strings.Contains(string(body), "SECRET") || strings.Contains(string(body), "config") {
			t.Errorf("channel secrets shown: %s", body)
		}
	}

	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"malformed", raw(`{"type":"demo"`), ""},
		{"type unknown", map[string]any{"type": "fax", "name": "X"}, "type"},
		{"type missing", map[string]any{"name": "X"}, "type"},
		{"type not a string", map[string]any{"type": 1, "name": "X"}, "type"},
		{"name missing", map[string]any{"type": "demo"}, "name"},
		{"config not an object", map[string]any{"type": "demo", "name": "X", "config": "a=b"}, "config"},
		{"config value not a string", map[string]any{"type": "sms", "name": "X", "config": map[string]any{
			"send_url": "http://127.0.0.1:9/", "auth_token": 12345, "webhook_secret": "s"}}, "config"},
		{"config value an object", map[string]any{"type": "demo", "name": "X", "config": map[string]any{"a": map[string]any{}}}, "config"},
		{"required config missing", map[string]any{"type": "sms", "name": "X", "config": map[string]string{"send_url": "http://127.0.0.1:9/"}}, "config.auth_token"},
		{"bad URL", map[string]any{"type": "sms", "name": "X", "config": map[string]string{
			"send_url": "ftp://x", "auth_token": "a", "webhook_secret": "s"}}, "send_url"},
	} {
		r := h.req("POST", "/api/v1/channels", tm.adminToken, tc.body)
		checkErr(t, r, 400, "invalid")
		if tc.field != "" && r.status == 400 && !strings.Contains(errMessage(t, r), tc.field) {
			t.Errorf("%s: message %q does not name %s", tc.name, errMessage(t, r), tc.field)
		}
	}
	if n := len(h.channels(tm.adminToken)); n != 2 {
		t.Errorf("failed creations left %d channels, want 2", n)
	}

	h.want(h.req("DELETE", "/api/v1/channels/"+ch.ID, tm.adminToken, nil), 204)
	checkErr(t, h.req("DELETE", "/api/v1/channels/"+ch.ID, tm.adminToken, nil), 404, "not_found")
	checkErr(t, h.req("DELETE", "/api/v1/channels/nope", tm.adminToken, nil), 404, "not_found")
	if list := h.channels(tm.adminToken); len(list) != 1 || list[0].ID != tm.channelID {
		t.Errorf("after delete: %+v", list)
	}
}

func TestWebhooksNotImplemented(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	// A provider's webhook names a channel of that provider; the team's
	// demo channel is none of them (webhook_test.go covers the rest).
	for _, tc := range []struct{ method, path string }{
		{"GET", "/webhooks/whatsapp/" + tm.channelID + "?hub.mode=subscribe&hub.challenge=1"},
		{"POST", "/webhooks/whatsapp/" + tm.channelID},
		{"POST", "/webhooks/tiktok/" + tm.channelID},
		{"POST", "/webhooks/sms/" + tm.channelID},
		{"POST", "/webhooks/meta/" + tm.channelID + "/data-deletion"},
	} {
		checkErr(t, h.req(tc.method, tc.path, "", raw(`{}`)), 404, "not_found")
	}
	checkErr(t, h.req("POST", "/webhooks/fax/"+tm.channelID, "", raw(`{}`)), 404, "not_found")
}
