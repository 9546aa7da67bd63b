package webpush_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/push"
	"github.com/onebox/onebox/internal/push/pushtest"
	"github.com/onebox/onebox/internal/push/webpush"
)

type env struct {
	svc    *pushtest.WebPushService
	keys   inbox.VAPIDKeys
	sender *webpush.Sender
}

func newEnv(t *testing.T) *env {
	t.Helper()
	svc := pushtest.NewWebPushService()
	t.Cleanup(svc.Close)
	keys, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.ExpectVAPIDKey(keys.PublicKey); err != nil {
		t.Fatal(err)
	}
	hosts, err := inbox.ParsePushHosts(svc.Host())
	if err != nil {
		t.Fatal(err)
	}
	s, err := webpush.New(webpush.Config{Keys: keys, Subject: "mailto:ops@example.com", Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, keys: keys, sender: s}
}

func (e *env) device(t *testing.T) (inbox.PushDevice, *pushtest.Subscription) {
	t.Helper()
	sub, err := e.svc.NewSubscription()
	if err != nil {
		t.Fatal(err)
	}
	return inbox.PushDevice{ID: "d1", Kind: inbox.PushWebPush, Endpoint: sub.Endpoint, P256dh: sub.P256dh, Auth: sub.Auth}, sub
}

func note() push.Notification {
	return push.Notification{
		Payload: push.Payload{TenantID: "t1", ConversationID: "c1", Seq: 42, Title: "María · WhatsApp", Body: "¿Tienen talla 38?"},
		Topic:   push.Topic("t1", "c1"),
		Urgent:  true,
		TTL:     24 * time.Hour,
	}
}

func next(t *testing.T, svc *pushtest.WebPushService) pushtest.WebPush {
	t.Helper()
	select {
	case p := <-svc.Pushes:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("the push service received nothing")
	}
	return pushtest.WebPush{}
}

func TestSendIsVerifiedAndDecryptedByThePushService(t *testing.T) {
	e := newEnv(t)
	d, _ := e.device(t)
	n := note()
	res := e.sender.Send(context.Background(), d, n)
	if res.Outcome != push.Delivered || res.Status != http.StatusCreated {
		t.Fatalf("Send = %v (status %d, err %v), want delivered 201", res.Outcome, res.Status, res.Err)
	}
	p := next(t, e.svc)
	if p.Err != nil {
		t.Fatalf("the push service refused the push: %v", p.Err)
	}
	var got push.Payload
	if err := json.Unmarshal(p.Payload, &got); err != nil {
		t.Fatalf("decrypted payload %q is not JSON: %v", p.Payload, err)
	}
	if got != n.Payload {
		t.Errorf("payload = %+v, want %+v", got, n.Payload)
	}
	for _, field := range []string{`"tenant_id"`, `"conversation_id"`, `"seq":42`, `"title"`, `"body"`} {
		if !strings.Contains(string(p.Payload), field) {
			t.Errorf("payload %s lacks %s", p.Payload, field)
		}
	}
	if p.TTL != 86400 {
		t.Errorf("TTL = %d, want 86400", p.TTL)
	}
	if p.Urgency != "high" {
		t.Errorf("Urgency = %q, want high", p.Urgency)
	}
	if p.Topic != n.Topic || len(p.Topic) != 32 {
		t.Errorf("Topic = %q, want %q (32 characters)", p.Topic, n.Topic)
	}
	if p.Claims.Sub != "mailto:ops@example.com" {
		t.Errorf("sub = %q, want mailto:ops@example.com", p.Claims.Sub)
	}
	if p.Claims.Aud != e.svc.URL {
		t.Errorf("aud = %q, want %q", p.Claims.Aud, e.svc.URL)
	}
}

func TestLargestPayloadFitsOneRecord(t *testing.T) {
	e := newEnv(t)
	d, _ := e.device(t)
	n := note()
	n.Payload.Body = strings.Repeat("x", push.MaxPayload)
	// The dispatcher never builds such a payload; this is the margin:
	// the library pads to one 4096-byte record.
	n.Payload.Body = n.Payload.Body[:push.MaxPayload-200]
	if res := e.sender.Send(context.Background(), d, n); res.Outcome != push.Delivered {
		t.Fatalf("Send = %v (%v), want delivered", res.Outcome, res.Err)
	}
	if p := next(t, e.svc); p.Err != nil {
		t.Fatalf("push refused: %v", p.Err)
	}
}

func TestOutcomeFollowsThePushServiceAnswer(t *testing.T) {
	cases := []struct {
		status     int
		retryAfter string
		want       push.Outcome
		wantAfter  time.Duration
	}{
		{http.StatusCreated, "", push.Delivered, 0},
		{http.StatusNotFound, "", push.Gone, 0},
		{http.StatusGone, "", push.Gone, 0},
		{http.StatusTooManyRequests, "7", push.Retry, 7 * time.Second},
		{http.StatusServiceUnavailable, "", push.Retry, 0},
		{http.StatusInternalServerError, "", push.Retry, 0},
		{http.StatusBadRequest, "", push.Rejected, 0},
		{http.StatusUnauthorized, "", push.Rejected, 0},
		{http.StatusForbidden, "", push.Rejected, 0},
		{http.StatusRequestEntityTooLarge, "", push.Rejected, 0},
	}
	e := newEnv(t)
	for _, c := range cases {
		d, _ := e.device(t)
		e.svc.Answer(d.Endpoint, pushtest.Answer{Status: c.status, RetryAfter: c.retryAfter, Body: "detail"})
		res := e.sender.Send(context.Background(), d, note())
		if res.Outcome != c.want || res.RetryAfter != c.wantAfter || res.Status != c.status {
			t.Errorf("answer %d: got %v after %v (status %d), want %v after %v", c.status, res.Outcome, res.RetryAfter, res.Status, c.want, c.wantAfter)
		}
		if p := next(t, e.svc); p.Err != nil {
			t.Errorf("answer %d: the push itself was refused: %v", c.status, p.Err)
		}
		if res.Err != nil && strings.Contains(res.Err.Error(), d.Endpoint) {
			t.Errorf("error %q quotes the endpoint", res.Err)
		}
	}
}

func TestNothingIsSentOutsideTheAllowedHosts(t *testing.T) {
	e := newEnv(t)
	var hits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer other.Close()
	d, _ := e.device(t)
	d.Endpoint = other.URL + "/push/x"
	res := e.sender.Send(context.Background(), d, note())
	if res.Outcome != push.Rejected {
		t.Errorf("Send to a host off the list = %v, want rejected", res.Outcome)
	}
	if hits.Load() != 0 {
		t.Error("the server called a host that is not on the list")
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer target.Close()
	redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/internal", http.StatusTemporaryRedirect))
	defer redirector.Close()

	keys, _ := webpush.GenerateKeys()
	hosts, err := inbox.ParsePushHosts(strings.TrimPrefix(redirector.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := webpush.New(webpush.Config{Keys: keys, Subject: "https://support.example.com", Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	d, _ := e.device(t)
	d.Endpoint = redirector.URL + "/push/1"
	res := s.Send(context.Background(), d, note())
	if res.Outcome != push.Rejected || res.Status != http.StatusTemporaryRedirect {
		t.Errorf("Send = %v (status %d), want rejected 307", res.Outcome, res.Status)
	}
	if hits.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestUnreachableServiceIsRetried(t *testing.T) {
	e := newEnv(t)
	d, _ := e.device(t)
	e.svc.Close()
	res := e.sender.Send(context.Background(), d, note())
	if res.Outcome != push.Retry {
		t.Fatalf("Send to a closed service = %v (%v), want retry", res.Outcome, res.Err)
	}
	if strings.Contains(res.Err.Error(), d.Endpoint) {
		t.Errorf("error %q quotes the endpoint", res.Err)
	}
}

func TestUnusableKeysAreRejectedWithoutARequest(t *testing.T) {
	e := newEnv(t)
	d, _ := e.device(t)
	d.P256dh = "AAAA"
	if res := e.sender.Send(context.Background(), d, note()); res.Outcome != push.Rejected {
		t.Errorf("Send with a broken key = %v, want rejected", res.Outcome)
	}
	if e.svc.Count() != 0 {
		t.Errorf("the push service got %d requests, want 0", e.svc.Count())
	}
}

func TestNewChecksKeysAndSubject(t *testing.T) {
	keys, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := webpush.New(webpush.Config{Keys: keys, Subject: "ops@example.com"}); err == nil {
		t.Error("a subject that is neither mailto: nor https: was accepted")
	}
	if _, err := webpush.New(webpush.Config{Keys: inbox.VAPIDKeys{PublicKey: "x", PrivateKey: "y"}, Subject: "mailto:a@b.example"}); err == nil {
		t.Error("malformed keys were accepted")
	}
	if _, err := webpush.New(webpush.Config{Keys: keys, Subject: "mailto:a@b.example"}); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestSubject(t *testing.T) {
	cases := []struct {
		configured, public string
		want               string
		ok, wantErr        bool
	}{
		{"mailto:ops@acme.example", "http://127.0.0.1:8080", "mailto:ops@acme.example", true, false},
		{"https://acme.example/contact", "", "https://acme.example/contact", true, false},
		{"", "https://support.acme.example/", "https://support.acme.example", true, false},
		{"", "http://127.0.0.1:8080", "mailto:onebox@127.0.0.1", false, false},
		{"ops", "", "", false, true},
	}
	for _, c := range cases {
		got, ok, err := webpush.Subject(c.configured, c.public)
		if (err != nil) != c.wantErr || got != c.want || ok != c.ok {
			t.Errorf("Subject(%q, %q) = %q, %v, %v; want %q, %v, error %v", c.configured, c.public, got, ok, err, c.want, c.ok, c.wantErr)
		}
	}
}

// The fake push service is only as good as what it refuses.
func TestPushServiceRefusesAnotherServersKey(t *testing.T) {
	e := newEnv(t)
	other, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := inbox.ParsePushHosts(e.svc.Host())
	s, err := webpush.New(webpush.Config{Keys: other, Subject: "mailto:ops@example.com", Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := e.device(t)
	res := s.Send(context.Background(), d, note())
	if res.Outcome != push.Rejected || res.Status != http.StatusUnauthorized {
		t.Errorf("Send signed by another key = %v (status %d), want rejected 401", res.Outcome, res.Status)
	}
	if p := next(t, e.svc); p.Err == nil {
		t.Error("the fake push service accepted a JWT from another key")
	}
}

func TestPushServiceRefusesAPayloadForAnotherSubscription(t *testing.T) {
	e := newEnv(t)
	d, _ := e.device(t)
	_, other := e.device(t)
	d.P256dh, d.Auth = other.P256dh, other.Auth // encrypted for someone else
	if res := e.sender.Send(context.Background(), d, note()); res.Outcome != push.Rejected {
		t.Errorf("Send = %v, want rejected", res.Outcome)
	}
	if p := next(t, e.svc); p.Err == nil || !strings.Contains(p.Err.Error(), "decrypt") {
		t.Errorf("fake push service error = %v, want a decryption failure", p.Err)
	}
}
