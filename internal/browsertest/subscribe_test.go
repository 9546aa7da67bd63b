package browsertest

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestPushSubscribe: after sign-in the app offers notifications; turning
// them on subscribes with the server's VAPID key and registers the
// subscription with the server. Headless Chromium never settles
// PushManager.subscribe, and its permission prompt cannot be answered, so
// the page gets a browser-made subscription stand-in: what is tested is the
// app's side (the key it passes, the registration it makes), and the
// server's acceptance of it.
func TestPushSubscribe(t *testing.T) {
	e := needBrowser(t)
	// The subscription's endpoint is a loopback push service the server
	// is allowed to call, so nothing leaves the machine.
	pushSvc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }))
	defer pushSvc.Close()
	u, _ := url.Parse(pushSvc.URL)
	srv := startServer(t, e, "ONEBOX_WEBPUSH_ALLOWED_HOSTS="+u.Host)
	tn := srv.newTenant("Subscribe Co")
	var key struct {
		PublicKey string `json:"public_key"`
	}
	srv.call("GET", "/api/v1/push/webpush/key", tn.adminToken, nil, &key, 200)
	if key.PublicKey == "" {
		t.Fatal("the server has no VAPID key")
	}
	browserKey, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	b64 := base64.RawURLEncoding.EncodeToString
	endpoint := pushSvc.URL + "/push/" + fmt.Sprint(time.Now().UnixNano())

	ctx := tab(t, e, true)
	signInUI(t, ctx, srv.base, tn.adminKey)
	waitJS(t, ctx, `!document.getElementById("push-offer").hidden`, 10*time.Second)

	eval[bool](t, ctx, fmt.Sprintf(`(() => {
		const sub = { endpoint: %s, expirationTime: null, options: null,
			toJSON() { return { endpoint: this.endpoint, expirationTime: null, keys: { p256dh: %s, auth: %s } }; },
			unsubscribe: async () => true };
		let current = null;
		window.__push = { keys: [], registered: [] };
		PushManager.prototype.getSubscription = async function () { return current; };
		PushManager.prototype.subscribe = async function (opts) {
			const k = new Uint8Array(opts.applicationServerKey);
			window.__push.keys.push(btoa(String.fromCharCode(...k)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""));
			window.__push.userVisibleOnly = opts.userVisibleOnly;
			current = { ...sub, options: opts };
			return current;
		};
		Notification.requestPermission = async () => "granted";
		const realFetch = window.fetch;
		window.fetch = async (input, init) => {
			const res = await realFetch(input, init);
			const u = typeof input === "string" ? input : input.url;
			if (u.endsWith("/api/v1/push/webpush") && init && init.method === "POST") {
				window.__push.registered.push({ status: res.status, body: JSON.parse(init.body) });
			}
			return res;
		};
		return true;
	})()`, jsString(endpoint), jsString(b64(browserKey.PublicKey().Bytes())), jsString(b64(auth))))

	click(t, ctx, "#push-yes")
	waitJS(t, ctx, `window.__push.registered.length === 1`, 10*time.Second)
	if got := eval[string](t, ctx, `window.__push.keys.join()`); got != key.PublicKey {
		t.Errorf("applicationServerKey = %q, want the server's VAPID key %q", got, key.PublicKey)
	}
	if !eval[bool](t, ctx, `window.__push.userVisibleOnly === true`) {
		t.Error("subscribed without userVisibleOnly")
	}
	if st := eval[float64](t, ctx, `window.__push.registered[0].status`); st != 201 {
		t.Errorf("POST /api/v1/push/webpush = %v, want 201", st)
	}
	if got := eval[string](t, ctx, `window.__push.registered[0].body.endpoint + "|" + window.__push.registered[0].body.keys.auth`); got != endpoint+"|"+b64(auth) {
		t.Errorf("registered %q", got)
	}
	waitJS(t, ctx, `document.getElementById("push-toggle").textContent === "Notifications are on" && document.getElementById("push-offer").hidden`, 5*time.Second)
	if !strings.Contains(eval[string](t, ctx, `document.getElementById("toast").textContent`), "Notifications are on") {
		t.Error("no confirmation shown")
	}
}
