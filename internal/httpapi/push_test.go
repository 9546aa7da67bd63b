package httpapi

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/push/webpush"
)

// webSub is a browser's PushSubscription.toJSON() for endpoint, with fresh
// keys.
func webSub(t *testing.T, endpoint string) map[string]any {
	t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return map[string]any{
		"endpoint":       endpoint,
		"expirationTime": nil,
		"keys": map[string]string{
			"p256dh": base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
			"auth":   base64.RawURLEncoding.EncodeToString(auth),
		},
	}
}

// devices lists what the holder of token has registered, through the
// service (the API has no list: endpoints and tokens are never shown).
func (h *harness) devices(token string) []inbox.PushDevice {
	h.t.Helper()
	p, err := h.svc.Authenticate(context.Background(), token)
	if err != nil {
		h.t.Fatalf("authenticate: %v", err)
	}
	ds, err := h.svc.PushDevices(context.Background(), p)
	if err != nil {
		h.t.Fatal(err)
	}
	return ds
}

func endpointsOf(ds []inbox.PushDevice) string {
	var e []string
	for _, d := range ds {
		if d.Kind == inbox.PushWebPush {
			e = append(e, strings.TrimPrefix(d.Endpoint, "https://fcm.googleapis.com/fcm/send/"))
		} else {
			e = append(e, "fcm:"+d.Token)
		}
	}
	return strings.Join(e, ",")
}

const fcmEndpoint = "https://fcm.googleapis.com/fcm/send/"

type deviceJSON struct {
	Device struct {
		ID        string     `json:"id"`
		Kind      string     `json:"kind"`
		ExpiresAt *time.Time `json:"expires_at"`
		CreatedAt time.Time  `json:"created_at"`
		UpdatedAt time.Time  `json:"updated_at"`
	} `json:"device"`
}

func TestWebPushKey(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	h.wantErr(h.req("GET", "/api/v1/push/webpush/key", tm.agentToken, nil), 503, "unavailable")

	keys, err := h.svc.EnsureVAPIDKeys(context.Background(), webpush.GenerateKeys)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.svc.EnsureVAPIDKeys(context.Background(), func() (inbox.VAPIDKeys, error) {
		t.Error("keys were made again although the store has them")
		return webpush.GenerateKeys()
	})
	if err != nil || again != keys {
		t.Errorf("second EnsureVAPIDKeys = %v, %v; want the stored keys", again, err)
	}
	r := h.want(h.req("GET", "/api/v1/push/webpush/key", tm.agentToken, nil), 200)
	var got map[string]string
	r.json(t, &got)
	if got["public_key"] != keys.PublicKey || len(got) != 1 {
		t.Errorf("key response = %v, want only the public key %s", got, keys.PublicKey)
	}
	if strings.Contains(string(r.body), keys.PrivateKey) {
		t.Error("the private VAPID key was answered")
	}
	h.wantErr(h.req("GET", "/api/v1/push/webpush/key", "", nil), 401, "unauthorized")
}

func TestWebPushSubscribe(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	sub := webSub(t, fcmEndpoint+"abc")
	sub["expirationTime"] = float64(time.Now().Add(48*time.Hour).UnixMilli()) + 0.5

	r := h.want(h.req("POST", "/api/v1/push/webpush", tm.agentToken, sub), 201)
	var first deviceJSON
	r.json(t, &first)
	if first.Device.ID == "" || first.Device.Kind != "webpush" || first.Device.ExpiresAt == nil {
		t.Errorf("device = %+v, want an id, kind webpush and the expiry", first.Device)
	}
	for _, secret := range []string{"abc", sub["keys"].(map[string]string)["p256dh"], sub["keys"].(map[string]string)["auth"]} {
		if strings.Contains(string(r.body), secret) {
			t.Errorf("the answer %s shows the endpoint or a key", r.body)
		}
	}
	if ds := h.devices(tm.agentToken); len(ds) != 1 || ds[0].Endpoint != fcmEndpoint+"abc" {
		t.Fatalf("devices = %+v, want the one endpoint", ds)
	}

	// Subscribing the same endpoint again refreshes it (new keys, no expiry).
	again := webSub(t, fcmEndpoint+"abc")
	var second deviceJSON
	h.want(h.req("POST", "/api/v1/push/webpush", tm.agentToken, again), 201).json(t, &second)
	if second.Device.ID != first.Device.ID || !second.Device.CreatedAt.Equal(first.Device.CreatedAt) || second.Device.ExpiresAt != nil {
		t.Errorf("re-subscribing = %+v, want the same device, refreshed", second.Device)
	}
	ds := h.devices(tm.agentToken)
	if len(ds) != 1 || ds[0].P256dh != again["keys"].(map[string]string)["p256dh"] {
		t.Errorf("after re-subscribing: %+v, want one device with the new keys", ds)
	}

	h.wantErr(h.req("POST", "/api/v1/push/webpush", "", sub), 401, "unauthorized")
}

func TestWebPushSubscribeRefusesBadInput(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	good := webSub(t, fcmEndpoint+"x")
	keys := good["keys"].(map[string]string)
	with := func(field string, v any) map[string]any {
		m := map[string]any{"endpoint": good["endpoint"], "keys": map[string]any{"p256dh": keys["p256dh"], "auth": keys["auth"]}}
		switch field {
		case "p256dh", "auth":
			m["keys"].(map[string]any)[field] = v
		default:
			m[field] = v
		}
		return m
	}
	offCurve := make([]byte, 65)
	offCurve[0] = 4
	cases := []struct {
		name string
		body any
	}{
		{"malformed", raw(`{"endpoint":`)},
		{"no endpoint", with("endpoint", "")},
		{"host not a push service", with("endpoint", "https://evil.example/push")},
		{"internal address", with("endpoint", "https://127.0.0.1:8080/api/v1/tenants")},
		{"plain http to a push service", with("endpoint", "http://fcm.googleapis.com/fcm/send/x")},
		{"other port on a push service", with("endpoint", "https://fcm.googleapis.com:8443/fcm/send/x")},
		{"look-alike host", with("endpoint", "https://fcm.googleapis.com.evil.example/x")},
		{"credentials in the URL", with("endpoint", "https://user:pw@fcm.googleapis.com/fcm/send/x")},
		{"not a URL", with("endpoint", "fcm.googleapis.com/fcm/send/x")},
		{"endpoint too long", with("endpoint", fcmEndpoint+strings.Repeat("a", 3000))},
		{"endpoint not a string", with("endpoint", 42)},
		{"p256dh missing", with("p256dh", "")},
		{"p256dh not base64", with("p256dh", "!!!")},
		{"p256dh too short", with("p256dh", base64.RawURLEncoding.EncodeToString(offCurve[:33]))},
		{"p256dh off the curve", with("p256dh", base64.RawURLEncoding.EncodeToString(offCurve))},
		{"auth wrong length", with("auth", base64.RawURLEncoding.EncodeToString([]byte("short")))},
		{"expired", with("expirationTime", float64(time.Now().Add(-time.Minute).UnixMilli()))},
		{"expiry not a number", with("expirationTime", "tomorrow")},
		{"expiry negative", with("expirationTime", -5)},
	}
	before := len(h.devices(tm.agentToken))
	for _, c := range cases {
		r := h.req("POST", "/api/v1/push/webpush", tm.agentToken, c.body)
		if r.status != 400 {
			t.Errorf("%s: got %s, want 400", c.name, r)
			continue
		}
		checkErr(t, r, 400, "invalid")
	}
	if after := len(h.devices(tm.agentToken)); after != before {
		t.Errorf("refused subscriptions left %d devices behind", after-before)
	}
	h.want(h.req("POST", "/api/v1/push/webpush", tm.agentToken, good), 201)
	// Standard base64 with padding, as some libraries send it, is fine.
	std := with("p256dh", base64.StdEncoding.EncodeToString(mustDecode(t, keys["p256dh"])))
	h.want(h.req("POST", "/api/v1/push/webpush", tm.agentToken, std), 201)
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWebPushAllowedHostsFromConfig(t *testing.T) {
	hosts, err := inbox.ParsePushHosts("127.0.0.1:9999, *.push.example")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, withConfig(func(c *Config) { c.PushHosts = hosts }))
	tm := h.newTeam("Acme")
	for _, ok := range []string{"http://127.0.0.1:9999/p/1", "https://eu.push.example/p/2"} {
		h.want(h.req("POST", "/api/v1/push/webpush", tm.agentToken, webSub(t, ok)), 201)
	}
	for _, bad := range []string{"http://127.0.0.1:8080/p/1", "https://push.example/p", fcmEndpoint + "x"} {
		h.wantErr(h.req("POST", "/api/v1/push/webpush", tm.agentToken, webSub(t, bad)), 400, "invalid")
	}
}

func TestWebPushCapReplacesTheOldest(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	for i := 1; i <= inbox.MaxPushDevices; i++ {
		h.want(h.req("POST", "/api/v1/push/webpush", tm.agentToken, webSub(t, fmt.Sprintf("%s%d", fcmEndpoint, i))), 201)
	}
	// Refreshing the first makes the second the oldest.
	h.want(h.req("POST", "/api/v1/push/webpush", tm.agentToken, webSub(t, fcmEndpoint+"1")), 201)
	h.want(h.req("POST", "/api/v1/push/fcm", tm.agentToken, map[string]string{"token": "phone-token-0123456789"}), 201)
	ds := h.devices(tm.agentToken)
	if len(ds) != inbox.MaxPushDevices {
		t.Fatalf("%d devices, want the cap of %d", len(ds), inbox.MaxPushDevices)
	}
	got := "," + endpointsOf(ds) + ","
	if strings.Contains(got, ",2,") || !strings.Contains(got, ",1,") || !strings.Contains(got, "fcm:phone-token-0123456789") {
		t.Errorf("devices %s: want 2 (the oldest) replaced by the phone", got)
	}
	// Another agent's cap is their own.
	h.want(h.req("POST", "/api/v1/push/webpush", tm.adminToken, webSub(t, fcmEndpoint+"admin")), 201)
	if n := len(h.devices(tm.agentToken)); n != inbox.MaxPushDevices {
		t.Errorf("the admin's subscription changed the agent's devices to %d", n)
	}
}

func TestWebPushUnsubscribe(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	h.want(h.req("POST", "/api/v1/push/webpush", tm.agentToken, webSub(t, fcmEndpoint+"a")), 201)
	h.want(h.req("POST", "/api/v1/push/webpush", tm.agentToken, webSub(t, fcmEndpoint+"b")), 201)
	h.want(h.req("POST", "/api/v1/push/webpush", tm.adminToken, webSub(t, fcmEndpoint+"c")), 201)

	// Someone else's endpoint is not the caller's to remove.
	h.want(h.req("DELETE", "/api/v1/push/webpush", tm.agentToken, map[string]string{"endpoint": fcmEndpoint + "c"}), 204)
	if got := endpointsOf(h.devices(tm.adminToken)); got != "c" {
		t.Errorf("admin's devices = %q after another agent's delete, want c", got)
	}
	h.want(h.req("DELETE", "/api/v1/push/webpush", tm.agentToken, map[string]string{"endpoint": fcmEndpoint + "a"}), 204)
	if got := endpointsOf(h.devices(tm.agentToken)); got != "b" {
		t.Errorf("devices = %q, want b", got)
	}
	h.want(h.req("DELETE", "/api/v1/push/webpush", tm.agentToken, map[string]string{"endpoint": fcmEndpoint + "a"}), 204)
	h.wantErr(h.req("DELETE", "/api/v1/push/webpush", tm.agentToken, map[string]string{}), 400, "invalid")
	h.wantErr(h.req("DELETE", "/api/v1/push/webpush", tm.agentToken, raw("nope")), 400, "invalid")
	h.wantErr(h.req("DELETE", "/api/v1/push/webpush", "", map[string]string{"endpoint": fcmEndpoint + "b"}), 401, "unauthorized")
}

func TestFCMRegister(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	const token = "dGVzdC10b2tlbg:APA91bE-phone_1"
	var first, second deviceJSON
	r := h.want(h.req("POST", "/api/v1/push/fcm", tm.agentToken, map[string]string{"token": token}), 201)
	r.json(t, &first)
	if first.Device.Kind != "fcm" || strings.Contains(string(r.body), token) {
		t.Errorf("answer %s: want kind fcm and no token", r.body)
	}
	h.want(h.req("POST", "/api/v1/push/fcm", tm.agentToken, map[string]string{"token": token}), 201).json(t, &second)
	if second.Device.ID != first.Device.ID {
		t.Errorf("registering again made device %s, want %s", second.Device.ID, first.Device.ID)
	}
	if got := endpointsOf(h.devices(tm.agentToken)); got != "fcm:"+token {
		t.Errorf("devices = %q", got)
	}
	for _, bad := range []any{map[string]string{}, map[string]string{"token": "short"}, map[string]string{"token": "has spaces in it, many"},
		map[string]string{"token": strings.Repeat("a", 5000)}, map[string]any{"token": 7}, raw("[]")} {
		h.wantErr(h.req("POST", "/api/v1/push/fcm", tm.agentToken, bad), 400, "invalid")
	}
	h.want(h.req("DELETE", "/api/v1/push/fcm", tm.agentToken, map[string]string{"token": token}), 204)
	if n := len(h.devices(tm.agentToken)); n != 0 {
		t.Errorf("%d devices after unregistering, want 0", n)
	}
	h.wantErr(h.req("DELETE", "/api/v1/push/fcm", tm.agentToken, map[string]string{}), 400, "invalid")
	h.wantErr(h.req("POST", "/api/v1/push/fcm", "", map[string]string{"token": token}), 401, "unauthorized")
}

func TestSignOutAndRevocationSilenceDevices(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	laptop := tm.agentToken
	phone := h.signIn(tm.agentKey)
	h.want(h.req("POST", "/api/v1/push/webpush", laptop, webSub(t, fcmEndpoint+"laptop")), 201)
	h.want(h.req("POST", "/api/v1/push/fcm", phone, map[string]string{"token": "phone-token-0123456789"}), 201)

	// Signing the laptop out removes the laptop's subscription only.
	h.want(h.req("DELETE", "/api/v1/session", laptop, nil), 204)
	if got := endpointsOf(h.devices(phone)); got != "fcm:phone-token-0123456789" {
		t.Fatalf("after signing the laptop out: %q, want the phone only", got)
	}

	// A second key with its own device; revoking the first key removes the
	// phone's token and keeps the other key's device.
	var k struct {
		Key struct {
			ID string `json:"id"`
		} `json:"key"`
		AccessKey string `json:"access_key"`
	}
	h.want(h.req("POST", "/api/v1/agents/"+tm.agentID+"/keys", tm.adminToken, nil), 201).json(t, &k)
	tablet := h.signIn(k.AccessKey)
	h.want(h.req("POST", "/api/v1/push/webpush", tablet, webSub(t, fcmEndpoint+"tablet")), 201)
	h.want(h.req("DELETE", "/api/v1/agents/"+tm.agentID+"/keys/"+tm.agentKeyID, tm.adminToken, nil), 204)
	if got := endpointsOf(h.devices(tablet)); got != "tablet" {
		t.Fatalf("after revoking the first key: %q, want the tablet only", got)
	}

	// Deactivating the agent removes everything they registered.
	p, err := h.svc.Authenticate(context.Background(), tablet)
	if err != nil {
		t.Fatal(err)
	}
	h.want(h.req("DELETE", "/api/v1/agents/"+tm.agentID, tm.adminToken, nil), 204)
	if ds, err := h.svc.PushDevices(context.Background(), p); err != nil || len(ds) != 0 {
		t.Errorf("after deactivation: %d devices (%v), want none", len(ds), err)
	}
}

func TestADeviceFollowsWhoeverSignedInLast(t *testing.T) {
	h := newHarness(t)
	acme := h.newTeam("Acme")
	other := h.newTeam("Other")
	shared := fcmEndpoint + "shared-browser"
	h.want(h.req("POST", "/api/v1/push/webpush", acme.agentToken, webSub(t, shared)), 201)
	h.want(h.req("POST", "/api/v1/push/webpush", acme.adminToken, webSub(t, shared)), 201)
	if n := len(h.devices(acme.agentToken)); n != 0 {
		t.Errorf("the agent still has the browser the admin took over (%d devices)", n)
	}
	h.want(h.req("POST", "/api/v1/push/webpush", other.agentToken, webSub(t, shared)), 201)
	if n := len(h.devices(acme.adminToken)); n != 0 {
		t.Errorf("Acme's admin still has a browser now signed in to another tenant")
	}
	if got := endpointsOf(h.devices(other.agentToken)); got != "shared-browser" {
		t.Errorf("other tenant's agent has %q", got)
	}
	// Removing it from the old owner's side does nothing to the new owner.
	h.want(h.req("DELETE", "/api/v1/push/webpush", acme.adminToken, map[string]string{"endpoint": shared}), 204)
	if got := endpointsOf(h.devices(other.agentToken)); got != "shared-browser" {
		t.Errorf("other tenant lost its device: %q", got)
	}
}
