package httpapi

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
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

// trickle sends head at once and then a body one byte every pace, until
// the server answers or closes the connection. It returns the answer's
// status (0 if the server closed without one), whether the connection
// was then closed, and how long after the headers went out the server
// acted.
func trickle(t *testing.T, addr, head string, pace time.Duration) (status int, closed bool, took time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return // cut off
				}
			}
		}
	}()
	defer func() { close(stop); <-wrote }()

	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	took = time.Since(start)
	switch {
	case err == nil:
		status = resp.StatusCode
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_, err = br.ReadByte()
		closed = closedByPeer(err)
	case closedByPeer(err) || errors.Is(err, io.ErrUnexpectedEOF):
		closed = true
	default:
		t.Fatalf("waiting for the server to cut a trickled body: %v", err)
	}
	return status, closed, took
}

// closedByPeer reports whether a read failed because the server closed
// the connection: a clean EOF, or a reset when it closed with bytes of
// ours still unread.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// wantCut checks a trickled request was answered 408 and closed, after
// its timeout and not much later.
func wantCut(t *testing.T, what string, status int, closed bool, took, timeout time.Duration) {
	t.Helper()
	if status != http.StatusRequestTimeout || !closed {
		t.Errorf("%s: status %d, closed %v; want 408 and the connection closed", what, status, closed)
	}
	// The deadline starts when the server reads the request, after the
	// headers went out; a second covers a loaded machine, far less than
	// the trickle would take to finish.
	if took < timeout*9/10 || took > timeout+time.Second {
		t.Errorf("%s: cut after %v, want about %v", what, took, timeout)
	}
}

// TestSlowRequestCounted: a client that trickles its body in, a byte
// every 20 ms of 100 (2 s), is cut off by the read timeout, which bounds
// the whole request rather than each read; the cut is answered 408 and
// counted.
func TestSlowRequestCounted(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t, withConfig(func(c *Config) { c.readTimeout = timeout; c.idleTimeout = timeout }))
	status, closed, took := trickle(t, strings.TrimPrefix(h.url, "http://"),
		"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", 20*time.Millisecond)
	wantCut(t, "a trickled JSON body", status, closed, took, timeout)
	if got := h.limitHits(hitSlowClient); got != 1 {
		t.Errorf("read_timeout hits = %v, want 1", got)
	}
}

// TestTrickledUploadIsCut: an upload gets its longer read timeout only
// with a live session; without one a trickled upload is cut at the
// ordinary timeout, with one at the upload timeout.
func TestTrickledUploadIsCut(t *testing.T) {
	const timeout, uploadTimeout = 300 * time.Millisecond, 1200 * time.Millisecond
	h := newHarness(t, withConfig(func(c *Config) {
		c.readTimeout, c.idleTimeout, c.uploadTimeout = timeout, timeout, uploadTimeout
	}))
	tm := h.newTeam("Acme")
	addr := strings.TrimPrefix(h.url, "http://")
	head := func(auth string) string {
		// 10,000 bytes is within the JSON limit, so only time is judged;
		// at a byte every 20 ms it would take 200 s.
		return "POST /api/v1/media HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n" +
			"Content-Length: 10000\r\n" + auth + "\r\n"
	}
	status, closed, took := trickle(t, addr, head(""), 20*time.Millisecond)
	wantCut(t, "a trickled upload without a session", status, closed, took, timeout)
	status, closed, took = trickle(t, addr, head("Authorization: Bearer "+tm.agentToken+"\r\n"), 20*time.Millisecond)
	wantCut(t, "a trickled upload with a live session", status, closed, took, uploadTimeout)
}
