package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestProviderChannelsAreWired checks, on the real binary, that the
// provider webhooks and senders are in place: a WhatsApp channel answers
// Meta's subscription check, stores a signed delivery, and sends the
// agent's reply to the (fake) Graph API; the TikTok and SMS webhooks
// refuse unsigned calls.
func TestProviderChannelsAreWired(t *testing.T) {
	sent := make(chan map[string]any, 1)
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v21.0/106540352242922/messages" || r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("graph: %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
			return
		}
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		sent <- body
		io.WriteString(w, `{"messaging_product":"whatsapp","messages":[{"id":"wamid.REPLY"}]}`)
	}))
	defer graph.Close()

	p := start(t, t.TempDir(), "--public-url", "https://support.example.com/")
	tm := p.newTeam("Wired")
	var ch struct {
		Channel struct {
			ID         string `json:"id"`
			WebhookURL string `json:"webhook_url"`
		} `json:"channel"`
	}
	if st := p.call("POST", "/api/v1/channels", tm.token, map[string]any{"type": "whatsapp", "name": "WA", "config": map[string]string{
		"phone_number_id": "106540352242922", "access_token": "tok", "app_secret": "sec", "verify_token": "vt", "api_base_url": graph.URL,
	}}, &ch); st != 201 {
		t.Fatalf("create channel: %d", st)
	}
	// The URL to paste into Meta's console is built from the public URL.
	if ch.Channel.WebhookURL != "https://support.example.com/webhooks/whatsapp/"+ch.Channel.ID {
		t.Errorf("webhook_url %q", ch.Channel.WebhookURL)
	}
	hook := p.url + "/webhooks/whatsapp/" + ch.Channel.ID

	resp, err := http.Get(hook + "?hub.mode=subscribe&hub.verify_token=vt&hub.challenge=424242")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "424242" {
		t.Fatalf("subscription check: %d %s", resp.StatusCode, b)
	}

	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Kerry"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.IN1","timestamp":"1749416383","type":"text","text":{"body":"Hi there"}}]}}]}]}`)
	mac := hmac.New(sha256.New, []byte("sec"))
	mac.Write(body)
	req, _ := http.NewRequest("POST", hook, bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("signed delivery: %d", resp.StatusCode)
	}
	var list struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	p.call("GET", "/api/v1/conversations", tm.token, nil, &list)
	if len(list.Conversations) != 1 {
		t.Fatalf("%d conversations, want 1", len(list.Conversations))
	}
	if st := p.call("POST", "/api/v1/conversations/"+list.Conversations[0].ID+"/messages", tm.token,
		map[string]string{"client_id": uuid.NewString(), "text": "Hello Kerry"}, nil); st != 201 {
		t.Fatalf("reply: %d", st)
	}
	select {
	case got := <-sent:
		if got["to"] != "16505551234" || !strings.Contains(jsonString(got["text"]), "Hello Kerry") {
			t.Errorf("sent %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reply never reached the Graph API")
	}

	for _, typ := range []string{"tiktok", "sms"} {
		cfg := map[string]string{"business_id": "b", "access_token": "t", "client_secret": "s"}
		if typ == "sms" {
			cfg = map[string]string{"send_url": "http://127.0.0.1:1/", "auth_token": "t", "webhook_secret": "s"}
		}
		var c struct {
			Channel struct {
				ID string `json:"id"`
			} `json:"channel"`
		}
		if st := p.call("POST", "/api/v1/channels", tm.token, map[string]any{"type": typ, "name": typ, "config": cfg}, &c); st != 201 {
			t.Fatalf("create %s channel: %d", typ, st)
		}
		resp, err := http.Post(p.url+"/webhooks/"+typ+"/"+c.Channel.ID, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("unsigned %s webhook: %d, want 401", typ, resp.StatusCode)
		}
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
