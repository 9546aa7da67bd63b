package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/push"
	"github.com/onebox/onebox/internal/push/fcm"
	"github.com/onebox/onebox/internal/push/pushtest"
	"github.com/onebox/onebox/internal/push/webpush"
)

// world is the dispatcher running for real: a bbolt store whose commits
// feed it, the Web Push and FCM senders, and loopback push services.
type world struct {
	t       *testing.T
	ctx     context.Context
	store   *bolt.Store
	svc     *inbox.Service
	wp      *pushtest.WebPushService
	fcm     *pushtest.FCMService
	hosts   inbox.HostList
	results chan observed
	team    map[string]inbox.Principal
	channel inbox.Channel
}

type observed struct {
	device inbox.PushDevice
	result push.Result
}

type noneOnline struct{}

func (noneOnline) Online(string) []string         { return nil }
func (noneOnline) Disconnect(string, inbox.Match) {}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), results: make(chan observed, 256), team: map[string]inbox.Principal{}}
	feed := push.NewFeed(0)
	var err error
	w.store, err = bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{Publisher: feed})
	if err != nil {
		t.Fatal(err)
	}
	w.svc, err = inbox.NewService(inbox.Config{Store: w.store})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := w.svc.EnsureVAPIDKeys(w.ctx, webpush.GenerateKeys)
	if err != nil {
		t.Fatal(err)
	}
	w.wp = pushtest.NewWebPushService()
	t.Cleanup(w.wp.Close)
	if err := w.wp.ExpectVAPIDKey(keys.PublicKey); err != nil {
		t.Fatal(err)
	}
	w.fcm = pushtest.NewFCMService("acme")
	t.Cleanup(w.fcm.Close)
	w.hosts, err = inbox.ParsePushHosts(w.wp.Host())
	if err != nil {
		t.Fatal(err)
	}
	wps, err := webpush.New(webpush.Config{Keys: keys, Subject: "mailto:ops@acme.example", Hosts: w.hosts})
	if err != nil {
		t.Fatal(err)
	}
	fcms, err := fcm.New(w.ctx, fcm.Config{Endpoint: w.fcm.Endpoint, ProjectID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := push.New(push.Config{
		Feed: feed, Planner: w.svc, Live: noneOnline{},
		Senders: map[string]push.Sender{inbox.PushWebPush: wps, inbox.PushFCM: fcms},
		Settle:  5 * time.Millisecond, Backoff: 20 * time.Millisecond,
		Observe: func(dev inbox.PushDevice, r push.Result) { w.results <- observed{dev, r} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		w.store.Close()
	})

	_, _, _, raw, err := w.svc.CreateTenant(w.ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	w.team["admin"], _, err = w.svc.SignIn(w.ctx, raw, inbox.Device{Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ana", "ben"} {
		_, _, key, err := w.svc.CreateAgent(w.ctx, w.team["admin"], inbox.NewAgent{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		w.team[name], _, err = w.svc.SignIn(w.ctx, key, inbox.Device{Name: "phone"})
		if err != nil {
			t.Fatal(err)
		}
	}
	w.channel, err = w.svc.CreateChannel(w.ctx, w.team["admin"], inbox.ChannelSMS, "Acme SMS", map[string]string{
		"send_url": "https://sms.example/send", "auth_token": "x", "webhook_secret": "y"})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) subscribe(name string) *pushtest.Subscription {
	w.t.Helper()
	sub, err := w.wp.NewSubscription()
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.svc.SubscribeWebPush(w.ctx, w.team[name], inbox.WebPushSubscription{Endpoint: sub.Endpoint, P256dh: sub.P256dh, Auth: sub.Auth}, w.hosts); err != nil {
		w.t.Fatal(err)
	}
	return sub
}

func (w *world) registerFCM(name, token string) {
	w.t.Helper()
	if _, err := w.svc.RegisterFCM(w.ctx, w.team[name], token); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) receive(text string) inbox.Message {
	w.t.Helper()
	got, err := w.svc.Receive(w.ctx, w.channel.ID, []inbox.Inbound{{ExternalID: uuid.NewString(), ContactHandle: "+15550100", ContactName: "Rosa", Text: text}})
	if err != nil {
		w.t.Fatal(err)
	}
	return got[0].Message
}

// seqOf finds the event that announced message id.
func (w *world) seqOf(id string) uint64 {
	w.t.Helper()
	evs, _, err := w.store.Events(w.ctx, w.team["admin"].Tenant.ID, 0, 1000)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, ev := range evs {
		var m inbox.Message
		if ev.Type == inbox.EventMessageCreated && json.Unmarshal(ev.Data, &m) == nil && m.ID == id {
			return ev.Seq
		}
	}
	w.t.Fatalf("no message.created event for %s", id)
	return 0
}

// await collects n attempts' outcomes.
func (w *world) await(n int) []observed {
	w.t.Helper()
	var out []observed
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case o := <-w.results:
			out = append(out, o)
		case <-deadline:
			w.t.Fatalf("saw %d push attempts, want %d: %+v", len(out), n, out)
		}
	}
	return out
}

func (w *world) devices(name string) map[string]bool {
	w.t.Helper()
	ds, err := w.svc.PushDevices(w.ctx, w.team[name])
	if err != nil {
		w.t.Fatal(err)
	}
	m := map[string]bool{}
	for _, d := range ds {
		m[d.ID] = true
	}
	return m
}

func TestNewMessageReachesBrowsersAndPhones(t *testing.T) {
	w := newWorld(t)
	w.subscribe("ana")
	w.subscribe("ben")
	w.registerFCM("ben", "ben-phone-token-0123456789")
	m := w.receive("Do you ship to Lisbon?")
	seq := w.seqOf(m.ID)

	for _, o := range w.await(3) {
		if o.result.Outcome != push.Delivered {
			t.Errorf("%s push: %v (%v)", o.device.Kind, o.result.Outcome, o.result.Err)
		}
	}
	want := push.Payload{TenantID: w.team["admin"].Tenant.ID, ConversationID: m.ConversationID, Seq: seq,
		Title: "Rosa · Acme SMS", Body: "Do you ship to Lisbon?"}
	for range 2 {
		p := <-w.wp.Pushes
		if p.Err != nil {
			t.Fatalf("push service refused: %v", p.Err)
		}
		var got push.Payload
		if err := json.Unmarshal(p.Payload, &got); err != nil {
			t.Fatalf("payload %q: %v", p.Payload, err)
		}
		if got != want {
			t.Errorf("decrypted payload = %+v, want %+v", got, want)
		}
		if p.Urgency != "high" || p.TTL != 86400 || p.Topic != push.Topic(want.TenantID, want.ConversationID) {
			t.Errorf("headers: urgency %q, TTL %d, topic %q", p.Urgency, p.TTL, p.Topic)
		}
	}
	s := <-w.fcm.Sends
	if s.Err != nil {
		t.Fatalf("FCM refused: %v", s.Err)
	}
	if s.Message.Token != "ben-phone-token-0123456789" || s.Message.Data["conversation_id"] != m.ConversationID || s.Message.Data["body"] != want.Body {
		t.Errorf("FCM message = %+v", s.Message)
	}
}

func TestPushServicesAnswersAreActedOn(t *testing.T) {
	w := newWorld(t)
	gone410 := w.subscribe("ana")
	gone404 := w.subscribe("ana")
	busy429 := w.subscribe("admin")
	down503 := w.subscribe("admin")
	ours400 := w.subscribe("ben")
	w.registerFCM("ana", "ana-unregistered-token-0000")
	w.registerFCM("ben", "ben-quota-token-00000000000")
	w.wp.Answer(gone410.Endpoint, pushtest.Answer{Status: http.StatusGone})
	w.wp.Answer(gone404.Endpoint, pushtest.Answer{Status: http.StatusNotFound})
	w.wp.Answer(busy429.Endpoint, pushtest.Answer{Status: http.StatusTooManyRequests, RetryAfter: "0"})
	w.wp.Answer(down503.Endpoint, pushtest.Answer{Status: http.StatusServiceUnavailable})
	w.wp.Answer(ours400.Endpoint, pushtest.Answer{Status: http.StatusBadRequest, Body: "bad"}, pushtest.Answer{Status: http.StatusBadRequest})
	w.fcm.Answer("ana-unregistered-token-0000", pushtest.FCMUnregistered)
	w.fcm.Answer("ben-quota-token-00000000000", pushtest.FCMQuota("0"))

	w.receive("hello?")
	// 5 web pushes + 2 retries, 2 FCM sends + 1 retry.
	outcomes := map[string][]push.Outcome{}
	for _, o := range w.await(10) {
		outcomes[o.device.ID] = append(outcomes[o.device.ID], o.result.Outcome)
	}
	id := func(endpoint string) string { return inbox.DeviceID(inbox.PushWebPush, endpoint) }
	check := func(what, dev string, want ...push.Outcome) {
		t.Helper()
		got := outcomes[dev]
		if len(got) != len(want) {
			t.Errorf("%s: outcomes %v, want %v", what, got, want)
			return
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: outcomes %v, want %v", what, got, want)
				return
			}
		}
	}
	check("410", id(gone410.Endpoint), push.Gone)
	check("404", id(gone404.Endpoint), push.Gone)
	check("429 then 201", id(busy429.Endpoint), push.Retry, push.Delivered)
	check("503 then 201", id(down503.Endpoint), push.Retry, push.Delivered)
	check("400", id(ours400.Endpoint), push.Rejected)
	check("FCM unregistered", inbox.DeviceID(inbox.PushFCM, "ana-unregistered-token-0000"), push.Gone)
	check("FCM quota", inbox.DeviceID(inbox.PushFCM, "ben-quota-token-00000000000"), push.Retry, push.Delivered)

	if ana := w.devices("ana"); len(ana) != 0 {
		t.Errorf("ana keeps %d devices after 404/410/UNREGISTERED, want 0", len(ana))
	}
	if admin := w.devices("admin"); len(admin) != 2 {
		t.Errorf("admin has %d devices after retries, want 2", len(admin))
	}
	ben := w.devices("ben")
	if !ben[id(ours400.Endpoint)] || len(ben) != 2 {
		t.Errorf("ben's devices = %v, want the 400 one and the phone kept", ben)
	}
}
