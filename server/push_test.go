package main

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/push"
	"github.com/onebox/onebox/internal/push/pushtest"
)

// TestPushReachesAnAgentWithoutASocket runs the real process against
// loopback push services: an agent's browser and phone, registered over
// the API, are notified of a customer message; the VAPID key is the same
// after a restart.
func TestPushReachesAnAgentWithoutASocket(t *testing.T) {
	wp := pushtest.NewWebPushService()
	defer wp.Close()
	fcm := pushtest.NewFCMService("onebox-e2e")
	defer fcm.Close()
	t.Setenv("ONEBOX_WEBPUSH_ALLOWED_HOSTS", wp.Host())
	t.Setenv("ONEBOX_VAPID_SUBJECT", "mailto:ops@acme.example")
	t.Setenv("ONEBOX_FCM_ENDPOINT", fcm.Endpoint)
	t.Setenv("ONEBOX_FCM_PROJECT_ID", "onebox-e2e")

	data := t.TempDir()
	p := start(t, data)
	tm := p.newTeam("Acme")
	var key struct {
		PublicKey string `json:"public_key"`
	}
	if st := p.call("GET", "/api/v1/push/webpush/key", tm.token, nil, &key); st != 200 || key.PublicKey == "" {
		t.Fatalf("webpush key: %d %+v", st, key)
	}
	if err := wp.ExpectVAPIDKey(key.PublicKey); err != nil {
		t.Fatal(err)
	}
	sub, err := wp.NewSubscription()
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"endpoint": sub.Endpoint, "keys": map[string]string{"p256dh": sub.P256dh, "auth": sub.Auth}}
	if st := p.call("POST", "/api/v1/push/webpush", tm.token, body, nil); st != 201 {
		t.Fatalf("subscribe: %d", st)
	}
	if st := p.call("POST", "/api/v1/push/fcm", tm.token, map[string]string{"token": "e2e-phone-token-0123456789"}, nil); st != 201 {
		t.Fatalf("register FCM: %d", st)
	}

	var in struct {
		Messages []struct {
			ConversationID string `json:"conversation_id"`
		} `json:"messages"`
	}
	if st := p.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tm.channelID,
		"messages": []map[string]string{{"external_id": uuid.NewString(), "from": "+15550123", "name": "Rosa", "text": "Is the shop open today?"}}}, &in); st != 201 {
		t.Fatalf("inbound: %d", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case got := <-wp.Pushes:
		if got.Err != nil {
			t.Fatalf("push service refused the push: %v", got.Err)
		}
		var pl push.Payload
		if err := json.Unmarshal(got.Payload, &pl); err != nil {
			t.Fatal(err)
		}
		if pl.ConversationID != in.Messages[0].ConversationID || pl.Body != "Is the shop open today?" || pl.Title != "Rosa · Test" || pl.Seq == 0 {
			t.Errorf("payload = %+v", pl)
		}
	case <-ctx.Done():
		t.Fatal("no web push arrived")
	}
	select {
	case got := <-fcm.Sends:
		if got.Err != nil || got.Message.Data["conversation_id"] != in.Messages[0].ConversationID {
			t.Errorf("FCM got %+v (%v)", got.Message, got.Err)
		}
	case <-ctx.Done():
		t.Fatal("no FCM message arrived")
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-p.done; err != nil {
		t.Fatalf("exit: %v", err)
	}
	p = start(t, data)
	var again struct {
		PublicKey string `json:"public_key"`
	}
	if st := p.call("GET", "/api/v1/push/webpush/key", tm.token, nil, &again); st != 200 || again.PublicKey != key.PublicKey {
		t.Errorf("after a restart the key is %q (%d), want %q", again.PublicKey, st, key.PublicKey)
	}
}

func TestBadPushConfigurationStopsTheStart(t *testing.T) {
	for _, env := range [][2]string{
		{"ONEBOX_WEBPUSH_ALLOWED_HOSTS", "https://push.example/"},
		{"ONEBOX_VAPID_SUBJECT", "ops"},
	} {
		t.Setenv(env[0], env[1])
		c, err := parseServe(nil, nil)
		if err == nil {
			t.Errorf("%s=%q accepted: %+v", env[0], env[1], c.Push)
		}
		t.Setenv(env[0], "")
	}
}
