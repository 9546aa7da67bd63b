package httpapi

import (
	"bufio"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// limitHits reads onebox_limit_hits_total{limit="kind"} from /metrics.
func (h *harness) limitHits(kind string) float64 {
	h.t.Helper()
	r := h.want(h.req("GET", "/metrics", "", nil), 200)
	m := regexp.MustCompile(`(?m)^onebox_limit_hits_total\{limit="` + kind + `"\} (\S+)$`).FindSubmatch(r.body)
	if m == nil {
		h.t.Fatalf("no onebox_limit_hits_total{limit=%q} in /metrics:\n%s", kind, r.body)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

// TestLimitHitsCounted trips every HTTP limit once and reads its counter
// on /metrics: each hit counts under its own label, and nothing else.
func TestLimitHitsCounted(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t,
		withLimits(Limits{
			SignIn: Rate{Per: -1}, Session: Rate{Per: slow, Burst: 3}, Webhook: Rate{Per: slow, Burst: 1},
		}),
		withConfig(func(c *Config) { c.readTimeout = timeout }))
	kinds := []string{hitSignInIP, hitSignInKey, hitSession, hitWebhook, hitRate, hitBodySize, hitHeaderSize}
	for _, k := range kinds {
		if v := h.limitHits(k); v != 0 {
			t.Fatalf("%s starts at %v", k, v)
		}
	}
	want := map[string]float64{}
	check := func(step string) {
		t.Helper()
		for _, k := range kinds {
			if got := h.limitHits(k); got != want[k] {
				t.Errorf("after %s: onebox_limit_hits_total{limit=%q} = %v, want %v", step, k, got, want[k])
			}
		}
	}

	// Session: newTeam made two calls with the admin's session.
	tm := h.newTeam("Acme")
	h.want(h.req("GET", "/api/v1/agents", tm.adminToken, nil), 200)
	wantLimited(t, h.req("GET", "/api/v1/agents", tm.adminToken, nil))
	want[hitSession]++
	check("a session over its budget")

	// Webhook: one channel's budget of 1.
	if r := h.req("POST", "/webhooks/sms/ch1", "", raw(`{}`)); r.status == 429 {
		t.Fatalf("first webhook call: %s", r)
	}
	wantLimited(t, h.req("POST", "/webhooks/sms/ch1", "", raw(`{}`)))
	want[hitWebhook]++
	check("a second webhook call")

	// Body over MaxBody (64 KiB in the harness).
	h.wantErr(h.req("POST", "/api/v1/tenants", "", raw(`{"name":"`+strings.Repeat("x", 70<<10)+`"}`)), 413, "too_large")
	want[hitBodySize]++
	check("a body over the limit")

	// Headers over the read buffer: fasthttp refuses them before routing.
	r := h.req("GET", "/healthz", "", nil, "X-Padding", strings.Repeat("x", 12<<10))
	checkErr(t, r, 431, "too_large")
	want[hitHeaderSize]++
	check("headers over the limit")
}

// TestSignInLimitsCounted trips the per-key-prefix and the per-address
// sign-in limits, each counted under its own label.
func TestSignInLimitsCounted(t *testing.T) {
	h := newHarness(t, withLimits(Limits{SignIn: Rate{Per: slow, Burst: 2}, SignInKey: Rate{Per: slow, Burst: 1}, Session: Rate{Per: -1}, Webhook: Rate{Per: -1}}))
	h.wantErr(h.req("POST", "/api/v1/session", "", signInBody("obx_prefixAAAA_guess1")), 401, "unauthorized")
	wantLimited(t, h.req("POST", "/api/v1/session", "", signInBody("obx_prefixAAAA_guess2")))
	if k, ip := h.limitHits(hitSignInKey), h.limitHits(hitSignInIP); k != 1 || ip != 0 {
		t.Errorf("after a second guess of one prefix: signin_key %v, signin_ip %v; want 1, 0", k, ip)
	}
	h.wantErr(h.req("POST", "/api/v1/session", "", signInBody("obx_prefixBBBB_guess1")), 401, "unauthorized")
	wantLimited(t, h.req("POST", "/api/v1/session", "", signInBody("obx_prefixCCCC_guess1")))
	if k, ip := h.limitHits(hitSignInKey), h.limitHits(hitSignInIP); k != 1 || ip != 1 {
		t.Errorf("after a third failure from one address: signin_key %v, signin_ip %v; want 1, 1", k, ip)
	}
}

// TestSlowRequestCounted: a client that stops sending its body is cut off
// by the read timeout, and the cut counts.
func TestSlowRequestCounted(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t, withConfig(func(c *Config) { c.readTimeout = timeout; c.idleTimeout = timeout }))
	conn, err := net.Dial("tcp", h.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, _ := io.ReadAll(bufio.NewReader(conn)) // until the server closes
	t.Logf("answer to a stalled body: %q", firstLineOf(string(resp)))
	if got := h.limitHits(hitSlowClient); got != 1 {
		t.Errorf("read_timeout hits = %v, want 1 (answer %q)", got, firstLineOf(string(resp)))
	}
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
