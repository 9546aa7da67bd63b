package fcm_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/push"
	"github.com/onebox/onebox/internal/push/fcm"
	"github.com/onebox/onebox/internal/push/pushtest"
)

const project = "onebox-test"

func newSender(t *testing.T) (*fcm.Sender, *pushtest.FCMService) {
	t.Helper()
	svc := pushtest.NewFCMService(project)
	t.Cleanup(svc.Close)
	s, err := fcm.New(context.Background(), fcm.Config{Endpoint: svc.Endpoint, ProjectID: project})
	if err != nil {
		t.Fatal(err)
	}
	return s, svc
}

func device(token string) inbox.PushDevice {
	return inbox.PushDevice{ID: inbox.DeviceID(inbox.PushFCM, token), Kind: inbox.PushFCM, Token: token}
}

func note(private bool) push.Notification {
	p := push.Payload{TenantID: "t1", ConversationID: "c1", Seq: 7, Title: "Ana · SMS", Body: "Is my order shipped?"}
	if private {
		p.Title, p.Body = "", ""
	}
	return push.Notification{Payload: p, Private: private, Topic: push.Topic("t1", "c1"), Urgent: true, TTL: 24 * time.Hour}
}

func received(t *testing.T, svc *pushtest.FCMService) pushtest.FCMSend {
	t.Helper()
	select {
	case s := <-svc.Sends:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("FCM received nothing")
	}
	return pushtest.FCMSend{}
}

const token = "fcm-token-aaaaaaaaaaaaaaaaaaaa:APA91bHx"

func TestMessageShape(t *testing.T) {
	s, svc := newSender(t)
	n := note(false)
	if res := s.Send(context.Background(), device(token), n); res.Outcome != push.Delivered {
		t.Fatalf("Send = %v (%v), want delivered", res.Outcome, res.Err)
	}
	got := received(t, svc)
	if got.Err != nil {
		t.Fatalf("FCM refused the request: %v", got.Err)
	}
	m := got.Message
	if m.Token != token {
		t.Errorf("token = %q, want %q", m.Token, token)
	}
	want := n.Payload.Data()
	if len(m.Data) != len(want) {
		t.Errorf("data = %v, want %v", m.Data, want)
	}
	for k, v := range want {
		if m.Data[k] != v {
			t.Errorf("data[%s] = %q, want %q", k, m.Data[k], v)
		}
	}
	if m.Data["seq"] != "7" {
		t.Errorf("data.seq = %q, want \"7\"", m.Data["seq"])
	}
	if m.Android == nil || m.Android.Priority != "high" || m.Android.CollapseKey != n.Topic || m.Android.TTL != "86400s" {
		t.Errorf("android = %+v, want priority high, collapse key %q, ttl 86400s", m.Android, n.Topic)
	}
	if m.Android != nil && (m.Android.Notification == nil || m.Android.Notification.Tag != n.Topic) {
		t.Errorf("android.notification = %+v, want tag %q", m.Android.Notification, n.Topic)
	}
	if m.Notification == nil || m.Notification.Title != n.Payload.Title || m.Notification.Body != n.Payload.Body {
		t.Errorf("notification = %+v, want the payload's title and body", m.Notification)
	}
}

func TestPrivateModeIsDataOnly(t *testing.T) {
	s, svc := newSender(t)
	if res := s.Send(context.Background(), device(token), note(true)); res.Outcome != push.Delivered {
		t.Fatalf("Send = %v (%v), want delivered", res.Outcome, res.Err)
	}
	m := received(t, svc).Message
	if m.Notification != nil {
		t.Errorf("private push carries a notification block %+v", m.Notification)
	}
	if m.Data["conversation_id"] != "c1" || m.Data["body"] != "" || m.Data["title"] != "" {
		t.Errorf("private data = %v, want ids and no content", m.Data)
	}
}

func TestOutcomeFollowsFCMsAnswer(t *testing.T) {
	cases := []struct {
		name      string
		answer    pushtest.Answer
		want      push.Outcome
		wantAfter time.Duration
	}{
		{"unregistered", pushtest.FCMUnregistered, push.Gone, 0},
		{"invalid token", pushtest.FCMInvalidToken, push.Gone, 0},
		{"invalid other field", pushtest.FCMInvalidOther, push.Rejected, 0},
		{"sender mismatch", pushtest.FCMSenderMismatch, push.Rejected, 0},
		{"quota", pushtest.FCMQuota("3"), push.Retry, 3 * time.Second},
		{"internal", pushtest.Answer{Status: 500, Body: `{"error":{"code":500,"status":"INTERNAL","message":"oops","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INTERNAL"}]}}`}, push.Retry, 0},
	}
	s, svc := newSender(t)
	for _, c := range cases {
		tok := token + strings.ReplaceAll(c.name, " ", "-")
		svc.Answer(tok, c.answer)
		res := s.Send(context.Background(), device(tok), note(false))
		if res.Outcome != c.want || res.RetryAfter != c.wantAfter {
			t.Errorf("%s: got %v after %v (%v), want %v after %v", c.name, res.Outcome, res.RetryAfter, res.Err, c.want, c.wantAfter)
		}
		if got := received(t, svc); got.Err != nil {
			t.Errorf("%s: the request itself was malformed: %v", c.name, got.Err)
		}
	}
}

func TestUnreachableFCMIsRetried(t *testing.T) {
	s, svc := newSender(t)
	svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if res := s.Send(ctx, device(token), note(false)); res.Outcome != push.Retry {
		t.Errorf("Send to a closed FCM = %v (%v), want retry", res.Outcome, res.Err)
	}
}

func TestNewNeedsAProject(t *testing.T) {
	if _, err := fcm.New(context.Background(), fcm.Config{Endpoint: "http://127.0.0.1:1/v1"}); err == nil {
		t.Error("an endpoint without a project id was accepted")
	}
	if _, err := fcm.New(context.Background(), fcm.Config{}); err == nil {
		t.Error("an empty configuration was accepted")
	}
}

func TestCredentialsFileIsChecked(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"type":"authorized_user","client_id":"x"}`), 0o600)
	if _, err := fcm.New(context.Background(), fcm.Config{CredentialsFile: bad}); err == nil {
		t.Error("a credentials file that is not a service account key was accepted")
	}
	if _, err := fcm.New(context.Background(), fcm.Config{CredentialsFile: filepath.Join(dir, "missing.json")}); err == nil {
		t.Error("a missing credentials file was accepted")
	}
}

// With a service account, the SDK trades a signed assertion for an access
// token at the key's token_uri and sends it to FCM. Both are loopback here.
func TestServiceAccountAuthenticates(t *testing.T) {
	var tokenCalls atomic.Int64
	oauth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenCalls.Add(1)
		r.ParseForm()
		if r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"ya29.test-token","expires_in":3600,"token_type":"Bearer"}`))
	}))
	defer oauth.Close()

	svc := pushtest.NewFCMService("acme-support")
	defer svc.Close()

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "acme-support", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "push@acme-support.iam.gserviceaccount.com", "client_id": "1",
		"token_uri": oauth.URL + "/token",
	})
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := fcm.New(context.Background(), fcm.Config{CredentialsFile: path, Endpoint: svc.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if s.Project() != "acme-support" {
		t.Errorf("project = %q, want the service account's", s.Project())
	}
	if res := s.Send(context.Background(), device(token), note(false)); res.Outcome != push.Delivered {
		t.Fatalf("Send = %v (%v), want delivered", res.Outcome, res.Err)
	}
	got := received(t, svc)
	if got.Err != nil {
		t.Fatalf("FCM refused: %v", got.Err)
	}
	if tokenCalls.Load() == 0 {
		t.Error("the SDK never asked the token endpoint")
	}
	if got.Authorization != "Bearer ya29.test-token" {
		t.Errorf("Authorization = %q, want the service account's access token", got.Authorization)
	}
}

func TestSandboxEndpointIsUnauthenticated(t *testing.T) {
	s, svc := newSender(t)
	s.Send(context.Background(), device(token), note(false))
	if got := received(t, svc); got.Authorization != "" {
		t.Errorf("Authorization = %q, want none without credentials", got.Authorization)
	}
}
