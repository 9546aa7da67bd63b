package browsertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// TestBehindHTTPSProxy runs the app as an operator deploys it: OneBox on
// loopback behind a TLS-terminating reverse proxy, with ONEBOX_PUBLIC_URL
// set to the proxy's https origin. Over https the page loads with no
// certificate interstitial, no mixed content and no console errors; an agent
// signs in; the live stream connects over wss:// and shows a customer's
// message that the gateway posted to the https webhook URL; the service
// worker controls the page after a reload; and the app is installable.
func TestBehindHTTPSProxy(t *testing.T) {
	e := needBrowser(t)
	cert, spki := selfSignedLoopbackCert(t)

	// The proxy's port is the public origin, so it is bound before the
	// server starts and told its public URL.
	proxy := httptest.NewUnstartedServer(nil)
	proxy.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	public := "https://" + proxy.Listener.Addr().String()
	srv := startServer(t, e, "ONEBOX_PUBLIC_URL="+public)
	upstream, err := url.Parse(srv.base)
	if err != nil {
		t.Fatal(err)
	}
	// As an operator's proxy does: the browser's Host is passed on (the
	// live stream's origin check compares it with Origin), and the
	// X-Forwarded-* headers are set. httputil.ReverseProxy passes the
	// WebSocket upgrade through.
	proxy.Config.Handler = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	proxy.StartTLS()
	t.Cleanup(proxy.Close)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 15 * time.Second}

	tn := srv.newTenant("Acme")
	gw := newGateway(t)
	srv.withSMS(&tn, gw)
	var chans struct {
		Channels []struct {
			ID         string
			WebhookURL string `json:"webhook_url"`
		}
	}
	srv.call("GET", "/api/v1/channels", tn.adminToken, nil, &chans, 200)
	var hook string
	for _, c := range chans.Channels {
		if c.ID == tn.smsID {
			hook = c.WebhookURL
		}
	}
	if want := public + "/webhooks/sms/" + tn.smsID; hook != want {
		t.Fatalf("SMS channel's webhook URL = %q, want %q", hook, want)
	}

	// A Chromium of its own that trusts exactly this certificate, by its
	// public key, as a browser trusts a certificate from a real CA.
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		browserOptions(e.chrome, filepath.Join(t.TempDir(), "chrome"),
			chromedp.Flag("ignore-certificate-errors-spki-list", spki))...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	ctx := tab(t, &env{bin: e.bin, browser: bctx, shots: e.shots, chrome: e.chrome}, false)

	// Everything the page reports or requests is checked: console errors
	// and warnings, browser log errors (mixed content, blocked or failed
	// loads, CSP), and any plain http:// or ws:// request.
	var mu sync.Mutex
	var problems, sockets []string
	report := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					if a.Description != "" {
						parts = append(parts, a.Description)
					} else {
						parts = append(parts, string(a.Value))
					}
				}
				report("console.%s: %s", ev.Type, strings.Join(parts, " "))
			}
		case *cdplog.EventEntryAdded:
			en := ev.Entry
			// The app asks whether the server takes uploads with a GET on
			// the upload route, which answers 405 when it does; Chromium
			// logs that answer as a failed load.
			if en.Source == cdplog.EntrySourceNetwork && en.URL == public+"/api/v1/media" && strings.Contains(en.Text, "405") {
				break
			}
			if en.Level == cdplog.EntryLevelError || strings.Contains(strings.ToLower(en.Text), "mixed content") {
				report("browser log %s (%s): %s %s", en.Level, en.Source, en.Text, en.URL)
			}
		case *network.EventRequestWillBeSent:
			if u := ev.Request.URL; strings.HasPrefix(u, "http:") || strings.HasPrefix(u, "ws:") {
				report("insecure request: %s", u)
			}
		case *network.EventWebSocketCreated:
			mu.Lock()
			sockets = append(sockets, ev.URL)
			mu.Unlock()
			if !strings.HasPrefix(ev.URL, "wss://") {
				report("WebSocket over %s", ev.URL)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("over https: %s", p)
		}
	})

	// The app itself, not an interstitial or an error page, in a secure
	// context.
	signInUI(t, ctx, public, tn.adminKey)
	if got := eval[string](t, ctx, `location.origin + " " + window.isSecureContext`); got != public+" true" {
		t.Fatalf("page origin and secure context = %q, want %q", got, public+" true")
	}

	// Live: the stream connects over wss:// through the proxy, and a text
	// the gateway posts to the https webhook URL appears in the open inbox.
	waitJS(t, ctx, `document.getElementById("conn").dataset.state === "connected"`, 10*time.Second)
	mu.Lock()
	if len(sockets) == 0 || sockets[0] != strings.Replace(public, "https:", "wss:", 1)+"/api/v1/ws" {
		t.Errorf("WebSockets opened: %q, want %s/api/v1/ws", sockets, strings.Replace(public, "https:", "wss:", 1))
	}
	mu.Unlock()
	const from, text = "+4915100000077", "Is the shop open on Sunday?"
	raw, _ := json.Marshal(map[string]any{"from": from, "to": smsNumber, "text": text, "id": fmt.Sprintf("in-%d", time.Now().UnixNano()), "timestamp": time.Now().Unix()})
	mac := hmac.New(sha256.New, []byte(smsWebhookSecret))
	mac.Write(raw)
	req, _ := http.NewRequest("POST", hook, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Onebox-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("webhook over https: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("webhook over https = %d %s", res.StatusCode, body)
	}
	conv := srv.conversationOf(tn, from)
	waitJS(t, ctx, fmt.Sprintf(`!!document.querySelector(%q) && document.querySelector(%q).innerText.includes(%q)`, convRow(conv), convRow(conv), "open on Sunday"), 5*time.Second)

	// The service worker installs over https and controls the page once
	// it is reloaded.
	if !eval[bool](t, ctx, `navigator.serviceWorker.ready.then((reg) => !!reg.active)`) {
		t.Fatal("service worker ready without an active worker")
	}
	do(t, ctx, chromedp.Reload())
	swReady(t, ctx)
	waitJS(t, ctx, `!document.getElementById("main").hidden && document.getElementById("conn").dataset.state === "connected"`, 10*time.Second)
	if got := eval[string](t, ctx, `navigator.serviceWorker.controller.scriptURL`); got != public+"/sw.js" {
		t.Errorf("service worker = %q, want %s/sw.js", got, public)
	}

	inst, err := chromedp.Call(ctx, page.GetInstallabilityErrors, cdp.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ie := range inst.InstallabilityErrors {
		t.Errorf("installability error over https: %s %v", ie.ErrorID, ie.ErrorArguments)
	}
}

// selfSignedLoopbackCert makes an ECDSA certificate for 127.0.0.1 and
// returns it with the base64 SHA-256 of its SubjectPublicKeyInfo, the form
// Chromium's --ignore-certificate-errors-spki-list takes.
func selfSignedLoopbackCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, base64.StdEncoding.EncodeToString(sum[:])
}
