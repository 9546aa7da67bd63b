package sms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/channel/channeltest"
	"github.com/onebox/onebox/internal/channel/sms"
	"github.com/onebox/onebox/internal/inbox"
)

// gateway is a loopback SMS gateway speaking CONTRACT.md's protocol.
type gateway struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	bodies   []map[string]string
	byID     map[string]string // onebox id -> gateway id: it deduplicates
	failNext []func(w http.ResponseWriter)
	n        int
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{t: t, byID: map[string]string{}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) config() map[string]string {
	return map[string]string{"send_url": g.srv.URL + "/v1/sms", "auth_token": "gw-token", "webhook_secret": "hook-secret", "from": "+447700900999"}
}

func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/sms" {
		g.t.Errorf("gateway: unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer gw-token" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"bad token"}`)
		return
	}
	var body map[string]string
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["id"] == "" || body["to"] == "" || body["text"] == "" || body["from"] != "+447700900999" {
		g.t.Errorf("gateway: bad body %v (%v)", body, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bodies = append(g.bodies, body)
	if len(g.failNext) > 0 {
		f := g.failNext[0]
		g.failNext = g.failNext[1:]
		f(w)
		return
	}
	id, ok := g.byID[body["id"]]
	if !ok {
		g.n++
		id = fmt.Sprintf("gw-%d", g.n)
		g.byID[body["id"]] = id
	}
	fmt.Fprintf(w, `{"id":%q}`, id)
}

func (g *gateway) calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.bodies)
}

type rig struct {
	env *channeltest.Env
	gw  *gateway
	ch  inbox.Channel
}

func newRig(t *testing.T, gw *gateway, dir, key string, clock *channeltest.Clock, send bool) *rig {
	t.Helper()
	opts := channeltest.Options{Dir: dir, AdminKey: key,
		Webhooks: func(d channeltest.Deps) map[string]channel.Webhook {
			return map[string]channel.Webhook{inbox.ChannelSMS: sms.NewWebhook(d.Svc)}
		},
	}
	if clock != nil {
		opts.Now = clock.Now
	}
	if send {
		opts.Senders = func(d channeltest.Deps) map[string]inbox.Sender {
			return map[string]inbox.Sender{inbox.ChannelSMS: channel.NewGuard(sms.NewSender(sms.SenderConfig{Now: opts.Now}),
				channel.GuardConfig{Claims: d.Svc, Limits: sms.DefaultLimits, Idempotent: true})}
		}
	}
	r := &rig{env: channeltest.Start(t, opts), gw: gw}
	if key == "" {
		r.ch = r.env.CreateChannel(inbox.ChannelSMS, gw.config())
	} else {
		cs, err := r.env.Svc.ListChannels(context.Background(), r.env.Admin)
		if err != nil || len(cs) != 1 {
			t.Fatalf("channels after restart: %v %v", cs, err)
		}
		r.ch = cs[0]
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

func (r *rig) post(body []byte) channeltest.Response {
	return r.env.Do("POST", "/webhooks/sms/"+r.ch.ID, map[string]string{sms.SignatureHeader: sms.Sign("hook-secret", body)}, body)
}

func TestInboundAndSignature(t *testing.T) {
	r := newRig(t, newGateway(t), "", "", nil, false)
	body := fixture(t, "inbound_rfc3339")
	head := r.env.Head()
	for name, sig := range map[string]string{"missing": "", "wrong": sms.Sign("other", body), "bare hex": strings.TrimPrefix(sms.Sign("hook-secret", body), "sha256=")} {
		h := map[string]string{}
		if sig != "" {
			h[sms.SignatureHeader] = sig
		}
		if got := r.env.Do("POST", "/webhooks/sms/"+r.ch.ID, h, body); got.Status != http.StatusUnauthorized {
			t.Errorf("%s signature: %s, want 401", name, got)
		}
	}
	if r.env.Head() != head {
		t.Fatal("a refused callback stored something")
	}
	for _, name := range []string{"inbound_rfc3339", "inbound_unix", "inbound_unix_string", "inbound_rfc3339"} {
		if got := r.post(fixture(t, name)); got.Status != 200 {
			t.Fatalf("%s: %s", name, got)
		}
	}
	cs := r.env.Conversations()
	if len(cs) != 2 {
		t.Fatalf("%d conversations, want 2", len(cs))
	}
	total := 0
	for _, c := range cs {
		msgs := r.env.Messages(c.ID)
		total += len(msgs)
		if c.Contact.Handle == "+447700900123" && (len(msgs) != 2 || msgs[0].Text != "Hi, is my order on its way?" || msgs[0].ExternalID != "SM5f2a9c1e7b") {
			t.Errorf("messages %+v", msgs)
		}
	}
	if total != 3 {
		t.Errorf("%d messages, want 3 (the redelivery is stored once)", total)
	}
	for _, bad := range []string{`{"text":"no sender"}`, `{"from":"+1","timestamp":"yesterday"}`, `{"id":"x","status":"lost"}`, `{"status":"sent"}`, `[1]`, `{"from":`} {
		if got := r.post([]byte(bad)); got.Status != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", bad, got)
		}
	}
}

func TestSendStatusesAndRetries(t *testing.T) {
	gw := newGateway(t)
	clock := channeltest.NewClock(time.Now())
	r := newRig(t, gw, "", "", clock, true)
	if got := r.post(fixture(t, "inbound_rfc3339")); got.Status != 200 {
		t.Fatal(got)
	}
	conv := r.env.Conversations()[0]

	// Over one segment: sent whole, in one request.
	long := strings.Repeat("Your order 1042 is packed and leaves today. ", 8)
	m := r.env.Reply(conv.ID, long)
	sent := r.env.Events.MessageStatus(t, m.ID, inbox.MsgSent)
	gw.mu.Lock()
	body := gw.bodies[0]
	gw.mu.Unlock()
	if sent.ExternalID != "gw-1" || body["id"] != m.ID || body["to"] != "+447700900123" || body["text"] != strings.TrimSpace(long) {
		t.Fatalf("sent %v as %q", body, sent.ExternalID)
	}
	if err := r.env.Result(); err != nil {
		t.Fatal(err)
	}
	// Status callbacks, out of order and repeated.
	for _, name := range []string{"status_delivered", "status_sent", "status_delivered"} {
		if got := r.post(fixture(t, name)); got.Status != 200 {
			t.Fatal(got)
		}
	}
	for _, mm := range r.env.Messages(conv.ID) {
		if mm.ID == m.ID && mm.Status != inbox.MsgDelivered {
			t.Fatalf("status %s, want delivered", mm.Status)
		}
	}

	// 429 with Retry-After, then 500, then accepted.
	gw.mu.Lock()
	gw.failNext = []func(w http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) },
	}
	gw.mu.Unlock()
	m2 := r.env.Reply(conv.ID, "One more thing")
	for attempt := 1; attempt <= 2; attempt++ {
		if err := r.env.Result(); err == nil {
			t.Fatalf("attempt %d succeeded", attempt)
		}
		item, ok := r.env.Item(m2.ID)
		if !ok {
			t.Fatal("retry not queued")
		}
		if attempt == 1 && item.NextAt.Sub(clock.Now()) < 30*time.Second {
			t.Fatalf("Retry-After ignored: %v", item.NextAt.Sub(clock.Now()))
		}
		clock.Advance(item.NextAt.Sub(clock.Now()))
	}
	if err := r.env.Result(); err != nil {
		t.Fatal(err)
	}
	r.env.Events.MessageStatus(t, m2.ID, inbox.MsgSent)

	// Other 4xx: failed at once, with the gateway's reason.
	gw.mu.Lock()
	gw.failNext = []func(w http.ResponseWriter){func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		io.WriteString(w, `{"error":{"code":"invalid_number","message":"+447700900123 is not a mobile number"}}`)
	}}
	gw.mu.Unlock()
	calls := gw.calls()
	m3 := r.env.Reply(conv.ID, "Third")
	failed := r.env.Events.MessageStatus(t, m3.ID, inbox.MsgFailed)
	if failed.Error == nil || failed.Error.Code != "http_422" || failed.Error.Message != "SMS gateway: +447700900123 is not a mobile number" {
		t.Fatalf("error %+v", failed.Error)
	}
	if gw.calls() != calls+1 {
		t.Fatalf("a 4xx was retried")
	}
	if err := r.env.Result(); err == nil {
		t.Fatal("the refused send reported success")
	}
	// A failed callback (gw-2 is the second reply) keeps the gateway's error.
	if got := r.post(fixture(t, "status_failed_string")); got.Status != 200 {
		t.Fatal(got)
	}
	f2 := r.env.Events.MessageStatus(t, m2.ID, inbox.MsgFailed)
	if f2.Error == nil || f2.Error.Message != "Number unreachable" {
		t.Fatalf("callback error %+v", f2.Error)
	}
}

func TestUncertainSendIsRepeatedForAGatewayThatDeduplicates(t *testing.T) {
	gw := newGateway(t)
	dir := t.TempDir()
	r := newRig(t, gw, dir, "", nil, false)
	if got := r.post(fixture(t, "inbound_rfc3339")); got.Status != 200 {
		t.Fatal(got)
	}
	m := r.env.Reply(r.env.Conversations()[0].ID, "Hello again")
	item, _ := r.env.Item(m.ID)
	// The gateway got it, and the process stopped before recording that.
	if _, err := r.env.Svc.BeginSend(context.Background(), item); err != nil {
		t.Fatal(err)
	}
	ch, err := r.env.Svc.ChannelByID(context.Background(), r.ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sms.NewSender(sms.SenderConfig{}).Send(context.Background(), inbox.Outgoing{
		Item: item, Channel: ch, Message: m, Contact: inbox.Contact{Handle: "+447700900123"},
	}); err != nil {
		t.Fatal(err)
	}
	key := r.env.AdminKey
	r.env.Stop()

	r2 := newRig(t, gw, dir, key, nil, true)
	if err := r2.env.Result(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	got := r2.env.Events.MessageStatus(t, m.ID, inbox.MsgSent)
	if got.ExternalID != "gw-1" || len(gw.byID) != 1 {
		t.Fatalf("external id %q, gateway messages %d; want gw-1 and 1", got.ExternalID, len(gw.byID))
	}
}

func TestParseAndSignature(t *testing.T) {
	cb, err := sms.Parse(fixture(t, "status_failed_object"))
	if err != nil || cb.Status == nil || cb.Status.Status != inbox.MsgFailed || cb.Status.Error.Code != "30003" || cb.Status.Error.Message != "Unreachable destination handset" {
		t.Fatalf("failed (object): %+v %v", cb.Status, err)
	}
	cb, err = sms.Parse(fixture(t, "status_failed_string"))
	if err != nil || cb.Status.Error.Message != "Number unreachable" {
		t.Fatalf("failed (string): %+v %v", cb.Status, err)
	}
	cb, err = sms.Parse(fixture(t, "inbound_unix"))
	if err != nil || cb.Inbound == nil || !cb.Inbound.At.Equal(time.Unix(1773482712, 0)) || cb.Inbound.ContactHandle != "+447700900123" {
		t.Fatalf("inbound: %+v %v", cb.Inbound, err)
	}
	body := fixture(t, "status_sent")
	if err := sms.VerifySignature("k", sms.Sign("k", body), body); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"", "sha256=", sms.Sign("j", body), "sha1=" + sms.Sign("k", body)[7:]} {
		if err := sms.VerifySignature("k", h, body); inbox.ErrorCode(err) != inbox.CodeUnauthorized {
			t.Errorf("VerifySignature(%q) = %v", h, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cb, err := sms.Parse(body)
		if err != nil {
			if inbox.ErrorCode(err) != inbox.CodeInvalid {
				t.Fatalf("error %v is not invalid", err)
			}
			return
		}
		if (cb.Inbound == nil) == (cb.Status == nil) {
			t.Fatalf("callback is neither or both: %+v", cb)
		}
		if in := cb.Inbound; in != nil && (in.ContactHandle == "" || in.Text == "") {
			t.Fatalf("inbound %+v", in)
		}
		if s := cb.Status; s != nil && (s.ExternalID == "" || (s.Status == inbox.MsgFailed) != (s.Error != nil)) {
			t.Fatalf("status %+v", s)
		}
	})
}

func FuzzVerifySignature(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add("hook-secret", sms.Sign("hook-secret", b), b)
	}
	f.Fuzz(func(t *testing.T, secret, header string, body []byte) {
		err := sms.VerifySignature(secret, header, body)
		if err != nil && inbox.ErrorCode(err) != inbox.CodeUnauthorized {
			t.Fatalf("error %v", err)
		}
		if secret != "" && header == sms.Sign(secret, body) && err != nil {
			t.Fatalf("the right signature was refused: %v", err)
		}
		if err == nil && (secret == "" || len(header) != len(sms.Sign(secret, body))) {
			t.Fatalf("%q passed", header)
		}
	})
}
