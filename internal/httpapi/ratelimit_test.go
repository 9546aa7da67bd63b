package httpapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

// slow is a rate nothing refills within a test.
const slow = 1.0 / 3600

func withLimits(l Limits) harnessOpt {
	return withConfig(func(c *Config) { c.Limits = l })
}

func wantLimited(t *testing.T, r *response) {
	t.Helper()
	checkErr(t, r, 429, "rate_limited")
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Errorf("Retry-After = %q, want a positive number of seconds", r.header.Get("Retry-After"))
	}
}

func signInBody(key string) map[string]any {
	return map[string]any{"access_key": key, "device": map[string]string{"name": "t", "platform": "go"}}
}

func TestSignInLimitedPerAddress(t *testing.T) {
	h := newHarness(t, withLimits(Limits{SignIn: Rate{Per: slow, Burst: 3}, SignInKey: Rate{Per: -1}, Session: Rate{Per: -1}}))
	for i := range 3 {
		key := "obx_guess" + strconv.Itoa(i) + "aaaaaaaaaaaaaaaaaaaaaaaaaaa"
		h.wantErr(h.req("POST", "/api/v1/session", "", signInBody(key)), 401, "unauthorized")
	}
	wantLimited(t, h.req("POST", "/api/v1/session", "", signInBody("obx_other")))
}

func TestSignInLimitedPerKeyPrefix(t *testing.T) {
	h := newHarness(t, withLimits(Limits{SignIn: Rate{Per: slow, Burst: 100}, SignInKey: Rate{Per: slow, Burst: 2}, Session: Rate{Per: -1}}))
	tm := h.newTeam("Acme")
	// Guesses sharing a real key's first 12 characters spend its budget.
	guess := tm.agentKey[:12] + "zzzzzzzzzzzzzzzzzzzz"
	for range 2 {
		h.wantErr(h.req("POST", "/api/v1/session", "", signInBody(guess)), 401, "unauthorized")
	}
	wantLimited(t, h.req("POST", "/api/v1/session", "", signInBody(tm.agentKey)))
	// Another key is not held up.
	h.want(h.req("POST", "/api/v1/session", "", signInBody(tm.adminKey)), 201)
}

// TestSuccessfulSignInsDoNotCount: a team signing in many devices from
// one address is not held up; only failures spend the budget.
func TestSuccessfulSignInsDoNotCount(t *testing.T) {
	h := newHarness(t, withLimits(Limits{SignIn: Rate{Per: slow, Burst: 2}, Session: Rate{Per: -1}}))
	tm := h.newTeam("Acme")
	for range 5 {
		h.want(h.req("POST", "/api/v1/session", "", signInBody(tm.agentKey)), 201)
	}
	for range 2 {
		h.wantErr(h.req("POST", "/api/v1/session", "", signInBody("obx_nosuchkeyatall0000000")), 401, "unauthorized")
	}
	wantLimited(t, h.req("POST", "/api/v1/session", "", signInBody(tm.agentKey)))
}

func TestSessionLimited(t *testing.T) {
	h := newHarness(t, withLimits(Limits{SignIn: Rate{Per: -1}, Session: Rate{Per: slow, Burst: 3}}))
	tm := h.newTeam("Acme") // the admin session made 2 calls
	h.want(h.req("GET", "/api/v1/agents", tm.adminToken, nil), 200)
	wantLimited(t, h.req("GET", "/api/v1/agents", tm.adminToken, nil))
	// The agent's session has its own budget.
	h.want(h.req("GET", "/api/v1/agents", tm.agentToken, nil), 200)
}

func TestWebhookLimitedPerChannel(t *testing.T) {
	h := newHarness(t, withLimits(Limits{SignIn: Rate{Per: -1}, Session: Rate{Per: -1}, Webhook: Rate{Per: slow, Burst: 2}}))
	for range 2 {
		if r := h.req("POST", "/webhooks/sms/ch1", "", raw(`{}`)); r.status == 429 {
			t.Fatalf("webhook call within the burst: %s", r)
		}
	}
	wantLimited(t, h.req("POST", "/webhooks/sms/ch1", "", raw(`{}`)))
	if r := h.req("POST", "/webhooks/sms/ch2", "", raw(`{}`)); r.status == 429 {
		t.Fatalf("another channel is limited: %s", r)
	}
}

func TestOperatorBackup(t *testing.T) {
	dir := t.TempDir()
	src, err := bolt.Open(filepath.Join(dir, "src.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	c := inbox.Collection{Tenant: "t1", Name: "notes"}
	if err := src.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, "k", "backed up") }); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, withConfig(func(cfg *Config) {
		cfg.OperatorToken = "op-token"
		cfg.Backup = src.Backup
	}))
	h.wantErr(h.req("GET", "/api/v1/operator/backup", "wrong", nil), 401, "unauthorized")
	h.wantErr(h.req("GET", "/api/v1/operator/backup", "agent-session", nil), 401, "unauthorized")
	r := h.want(h.req("GET", "/api/v1/operator/backup", "op-token", nil), 200)
	if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	path := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(path, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("open downloaded copy: %v", err)
	}
	defer cp.Close()
	var got string
	if err := cp.View(ctx, func(tx inbox.Tx) error { return tx.Get(c, "k", &got) }); err != nil || got != "backed up" {
		t.Fatalf("copy holds %q, %v", got, err)
	}

	// Without an operator token the route does not exist.
	off := newHarness(t)
	off.wantErr(off.req("GET", "/api/v1/operator/backup", "op-token", nil), 404, "not_found")
}

// TestSlowHeadersAreCut is slow-loris: a client sending its headers a
// byte at a time, slower than the read timeout allows, is disconnected
// before it finishes.
func TestSlowHeadersAreCut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t, withConfig(func(c *Config) { c.readTimeout = timeout; c.idleTimeout = timeout }))
	conn, err := net.Dial("tcp", h.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, bufio.NewReader(conn))
		closed <- err
	}()
	req := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + strings.Repeat("x", 200) + "\r\n\r\n"
	tick := time.NewTicker(20 * time.Millisecond) // 200+ bytes: over 4 s
	defer tick.Stop()
	start := time.Now()
	for i := 0; i < len(req); i++ {
		select {
		case <-closed:
			if d := time.Since(start); d > 10*timeout {
				t.Fatalf("cut after %v, read timeout %v", d, timeout)
			}
			return
		case <-tick.C:
		}
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			if errors.Is(err, net.ErrClosed) {
				t.Fatal(err)
			}
			return // the server closed the connection
		}
	}
	t.Fatalf("the server read %d bytes of headers over %v with a %v read timeout", len(req), time.Since(start), timeout)
}
