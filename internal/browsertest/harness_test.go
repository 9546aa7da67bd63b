// Package browsertest drives the agent app in a real headless Chromium
// against the real server binary (real bbolt directory, real HTTP and
// WebSockets on 127.0.0.1). Customers write in through an SMS channel whose
// gateway is a loopback stand-in (gateway_test.go: signed webhooks in, sends
// counted and checked, statuses reported by signed callbacks), or through
// the operator's inbound endpoint on the demo channel, whose simulated
// phones report delivered and read.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const operatorToken = "test-operator-token"

// env is what every test shares: the server binary and one browser.
type env struct {
	bin     string
	browser context.Context
	shots   string
	chrome  string // the Chromium executable, for tests that need a browser of their own
}

var suite struct {
	env  *env
	skip string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	chrome := findChromium()
	if chrome == "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "browsertest: Chromium is missing and CI=true: install it (apt-get install -y chromium) — failing")
			return 1
		}
		suite.skip = "Chromium is not installed (apt-get install -y chromium, or run make test): browser tests skipped"
		fmt.Fprintln(os.Stderr, "browsertest: "+suite.skip)
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "onebox-browsertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "onebox")
	build := exec.Command("go", "build", "-o", bin, "github.com/onebox/onebox/server")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "browsertest: build server:", err)
		return 1
	}
	shots := os.Getenv("ONEBOX_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "onebox-screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserOptions(chrome, filepath.Join(tmp, "chrome"))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil {
		fmt.Fprintln(os.Stderr, "browsertest: start Chromium:", err)
		return 1
	}
	suite.env = &env{bin: bin, browser: bctx, shots: shots, chrome: chrome}
	fmt.Fprintln(os.Stderr, "browsertest: screenshots in", shots)
	return m.Run()
}

// browserOptions are the flags every Chromium of the suite runs with.
// Chromium runs as root here (hence no sandbox), and on a closed network
// its background connections would only be refused.
func browserOptions(chrome, userDataDir string, extra ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(userDataDir),
		chromedp.WindowSize(1280, 800),
	)
	return append(opts, extra...)
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func needBrowser(t *testing.T) *env {
	t.Helper()
	if suite.env == nil {
		t.Skip(suite.skip)
	}
	return suite.env
}

// server is the onebox binary running on a fixed loopback port, so it can
// be stopped and started again at the same origin (the browser's service
// worker and storage are per origin).
type server struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	base string
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
	env  []string // extra environment, such as allowed push hosts
	mu   sync.Mutex
}

func startServer(t *testing.T, e *env, extraEnv ...string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &server{t: t, bin: e.bin, dir: t.TempDir(), addr: addr, base: "http://" + addr, log: &bytes.Buffer{}, env: extraEnv}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("server log:\n%s", s.log.String())
			s.mu.Unlock()
		}
	})
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (s *server) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "serve", "--addr", s.addr, "--data", s.dir, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "ONEBOX_OPERATOR_TOKEN="+operatorToken, "ONEBOX_PUBLIC_URL="+s.base)
	cmd.Env = append(cmd.Env, s.env...)
	cmd.Stdout = lockedWriter{&s.mu, s.log}
	cmd.Stderr = lockedWriter{&s.mu, s.log}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start server: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(s.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.done:
			s.t.Fatalf("server exited at start:\n%s", s.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server not ready after 15s")
		}
	}
}

// stop ends the server as an operator would (SIGTERM) and waits for it.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// call is one JSON API request; out may be nil. It fails the test on a
// status other than want.
func (s *server) call(method, path, token string, body, out any, want int) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		s.t.Fatalf("%s %s = %d %s, want %d", method, path, res.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

// tenant is a tenant made for one test: its admin's key and session, and a
// demo channel customers write in on.
type tenant struct {
	id, adminKey, adminToken, adminID, channelID string
	smsID                                        string // set by withSMS
}

func (s *server) newTenant(name string) tenant {
	s.t.Helper()
	var tr struct {
		Tenant    struct{ ID string }
		Admin     struct{ ID string }
		AccessKey string `json:"access_key"`
	}
	s.call("POST", "/api/v1/tenants", operatorToken, map[string]string{"name": name}, &tr, 201)
	tn := tenant{id: tr.Tenant.ID, adminKey: tr.AccessKey, adminID: tr.Admin.ID}
	tn.adminToken = s.signIn(tn.adminKey)
	var ch struct{ Channel struct{ ID string } }
	s.call("POST", "/api/v1/channels", tn.adminToken, map[string]any{"type": "demo", "name": "Web chat", "config": map[string]string{}}, &ch, 201)
	tn.channelID = ch.Channel.ID
	return tn
}

func (s *server) signIn(key string) string {
	s.t.Helper()
	var r struct{ Token string }
	s.call("POST", "/api/v1/session", "", map[string]any{"access_key": key, "device": map[string]string{"name": "test", "platform": "test"}}, &r, 201)
	return r.Token
}

// customer writes in as if the channel's provider had delivered it, and
// returns the stored message's conversation id.
func (s *server) customer(tn tenant, from, name, text string) string {
	s.t.Helper()
	var r struct {
		Messages []struct {
			ConversationID string `json:"conversation_id"`
		}
	}
	s.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{
		"channel_id": tn.channelID,
		"messages":   []map[string]string{{"external_id": fmt.Sprintf("ext-%d", time.Now().UnixNano()), "from": from, "name": name, "text": text}},
	}, &r, 201)
	return r.Messages[0].ConversationID
}

type message struct {
	ID        string `json:"id"`
	ClientID  string `json:"client_id"`
	Direction string `json:"direction"`
	Kind      string `json:"kind"`
	Text      string `json:"text"`
	Status    string `json:"status"`
}

func (s *server) messages(token, conv string) []message {
	s.t.Helper()
	var r struct{ Messages []message }
	s.call("GET", "/api/v1/conversations/"+conv+"/messages?limit=200", token, nil, &r, 200)
	return r.Messages
}

// ---------- browser helpers ----------

// tab opens a new tab in the shared browser. A fresh browser context
// (isolated storage, as another person's device) is made when isolated.
func tab(t *testing.T, e *env, isolated bool) context.Context {
	t.Helper()
	ctx, _ := closableTab(t, e, isolated)
	return ctx
}

// closableTab is tab with a function that closes it, as a person closes
// the app.
func closableTab(t *testing.T, e *env, isolated bool) (context.Context, context.CancelFunc) {
	t.Helper()
	var opts []chromedp.ContextOption
	if isolated {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	ctx, cancel := chromedp.NewContext(e.browser, opts...)
	t.Cleanup(cancel)
	var errs []string
	var mu sync.Mutex
	if err := chromedp.Listen(ctx, func(ev any) {
		if ex, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			d := ex.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			errs = append(errs, fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber+1))
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	return ctx, cancel
}

func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatal(err)
	}
}

// waitJS polls a JavaScript expression until it is truthy.
func waitJS(t *testing.T, ctx context.Context, expr string, timeout time.Duration) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(25*time.Millisecond))); err != nil {
		last, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " | " + (document.body ? document.body.innerText.slice(0, 600) : "")`))
		t.Fatalf("waiting for %s: %v\npage: %s", expr, err, last)
	}
}

// pollJS is waitJS that reports instead of failing.
func pollJS(ctx context.Context, expr string, timeout time.Duration) bool {
	c, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	_, err := chromedp.Run(c, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(25*time.Millisecond)))
	return err == nil
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return out
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// signInUI signs in through the sign-in form and waits for the inbox.
func signInUI(t *testing.T, ctx context.Context, base, key string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(base+"/"))
	waitJS(t, ctx, `!document.getElementById("signin").hidden`, 10*time.Second)
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("access-key"), key),
		chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)),
	)
	waitJS(t, ctx, `!document.getElementById("main").hidden`, 10*time.Second)
}

// swReady waits until the service worker controls the page, which is when
// the app shell is in its cache.
func swReady(t *testing.T, ctx context.Context) {
	t.Helper()
	waitJS(t, ctx, `navigator.serviceWorker && !!navigator.serviceWorker.controller`, 15*time.Second)
}

func convRow(id string) string {
	return fmt.Sprintf(`#conv-list li[data-id=%q] a`, id)
}

// openRow clicks a conversation's row until the app shows it. A banner
// that appears meanwhile (the push offer, shown once the server's key has
// come) moves the list between the click's aim and its landing, and a
// person clicks again then; so does the test, up to three times.
func openRow(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	opened := fmt.Sprintf(`location.pathname === "/c/" + %s`, jsString(id))
	for i := 0; ; i++ {
		click(t, ctx, convRow(id))
		if pollJS(ctx, opened, 3*time.Second) {
			return
		}
		if i == 2 {
			t.Fatalf("conversation %s did not open after three clicks; at %q", id, eval[string](t, ctx, "location.pathname"))
		}
	}
}
