package httpapi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

func TestUnknownRoutesAndMethods(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/v1/nope"}, {"POST", "/api/v1/nope"}, {"GET", "/api"}, {"GET", "/api/v2/agents"},
		{"GET", "/webhooks/whatsapp"}, {"DELETE", "/nothing-here"}, {"GET", "/API/V1/AGENTS"},
	} {
		checkErr(t, h.req(tc.method, tc.path, tm.adminToken, nil), 404, "not_found")
	}
	r := h.req("GET", "/api/v1/session", tm.adminToken, nil)
	checkErr(t, r, 405, "method_not_allowed")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "POST") || !strings.Contains(allow, "DELETE") {
		t.Errorf("405 Allow = %q, want POST and DELETE", allow)
	}
	checkErr(t, h.req("PUT", "/api/v1/agents", tm.adminToken, raw(`{}`)), 405, "method_not_allowed")
	// Fiber's messages echo the path; ours do not.
	r = h.req("GET", "/api/v1/%3Cscript%3E", tm.adminToken, nil)
	if strings.Contains(string(r.body), "script") {
		t.Errorf("404 echoes the path: %s", r.body)
	}
}

func TestBodyLimits(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	before := h.head(tm.adminToken)
	max := h.srv.maxBody

	// Just over the limit: read whole, answered by the route check.
	pad := `{"name":"x","role":"agent","pad":"` + strings.Repeat("a", max) + `"}`
	checkErr(t, h.req("POST", "/api/v1/agents", tm.adminToken, raw(pad)), 413, "too_large")
	checkErr(t, h.req("POST", "/api/v1/session", "", raw(pad)), 413, "too_large")
	// Before authentication: an oversized body costs nothing more.
	checkErr(t, h.req("POST", "/api/v1/agents", "", raw(pad)), 413, "too_large")
	// At the limit is fine.
	ok := `{"name":"x","pad":"` + strings.Repeat("a", max-len(`{"name":"x","pad":""}`)) + `"}`
	if len(ok) != max {
		t.Fatalf("test body is %d bytes, want %d", len(ok), max)
	}
	h.want(h.req("POST", "/api/v1/agents", tm.adminToken, raw(ok)), 201)
	before++ // that agent's agent.updated

	// Far over the limit: fasthttp refuses on the Content-Length alone
	// (see TestProtocolErrorsAreJSON).

	// Compressed bodies could expand past the limit after the check.
	checkErr(t, h.req("POST", "/api/v1/agents", tm.adminToken, raw(`{"name":"x"}`), "Content-Encoding", "gzip"), 400, "invalid")
	h.unchanged(tm.adminToken, before)
}

func checkSecurityHeaders(t *testing.T, what string, r *response) {
	t.Helper()
	for k, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
	if s := r.header.Get("Server"); s != "" {
		t.Errorf("%s: Server header %q", what, s)
	}
}

func TestSecurityHeadersAndRequestID(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	for what, r := range map[string]*response{
		"200":       h.req("GET", "/api/v1/agents", tm.agentToken, nil),
		"401":       h.req("GET", "/api/v1/agents", "", nil),
		"404":       h.req("GET", "/api/v1/nope", "", nil),
		"204":       h.req("POST", "/api/v1/conversations/x/read", "", nil),
		"healthz":   h.req("GET", "/healthz", "", nil),
		"malformed": h.req("POST", "/api/v1/session", "", raw("{")),
	} {
		checkSecurityHeaders(t, what, r)
		if id := r.header.Get("X-Request-Id"); len(id) != 16 {
			t.Errorf("%s: X-Request-Id = %q", what, id)
		}
	}
	r := h.req("GET", "/healthz", "", nil, "X-Request-Id", "lb-1234.abc")
	if got := r.header.Get("X-Request-Id"); got != "lb-1234.abc" {
		t.Errorf("a proxy's request id was not kept: %q", got)
	}
	r = h.req("GET", "/healthz", "", nil, "X-Request-Id", "evil\"id{}")
	if got := r.header.Get("X-Request-Id"); got == "evil\"id{}" || len(got) != 16 {
		t.Errorf("an unsafe request id was kept: %q", got)
	}
}

// TestInternalErrors: panics and unexpected errors answer a bare 500 and
// go to the log, with the request id, instead of to the client.
func TestInternalErrors(t *testing.T) {
	h := newHarness(t, beforeServe(func(s *Server) {
		s.app.Get("/api/test/panic", func(*fiber.Ctx) error { panic("secret panic detail") })
		s.app.Get("/api/test/fail", func(*fiber.Ctx) error {
			return fmt.Errorf("open /var/lib/onebox/secret.db: %w", errors.New("disk on fire"))
		})
		s.app.Get("/api/test/limited", func(*fiber.Ctx) error {
			return inbox.Errorf(inbox.CodeRateLimited, "slow down")
		})
		s.app.Get("/api/test/window", func(*fiber.Ctx) error {
			return fmt.Errorf("send: %w", inbox.Errorf(inbox.CodeWindowClosed, "the 24-hour window is closed"))
		})
		s.app.Get("/api/test/internal-code", func(*fiber.Ctx) error {
			return inbox.Errorf(inbox.CodeInternal, "store at /secret broke")
		})
	}))
	for _, path := range []string{"/api/test/panic", "/api/test/fail", "/api/test/internal-code"} {
		r := h.req("GET", path, "", nil)
		checkErr(t, r, 500, "internal")
		if strings.Contains(string(r.body), "secret") {
			t.Errorf("%s leaks the error: %s", path, r.body)
		}
		id := r.header.Get("X-Request-Id")
		if !strings.Contains(h.logs.String(), `"request_id":"`+id+`"`) {
			t.Errorf("%s: request %s not in the log", path, id)
		}
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "secret panic detail") || !strings.Contains(logs, "disk on fire") {
		t.Errorf("the log lacks the real errors:\n%s", logs)
	}
	// The server survived the panic.
	h.want(h.req("GET", "/healthz", "", nil), 200)

	r := h.req("GET", "/api/test/limited", "", nil)
	checkErr(t, r, 429, "rate_limited")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("429 Retry-After = %q, want 1", r.header.Get("Retry-After"))
	}
	r = h.req("GET", "/api/test/window", "", nil)
	checkErr(t, r, 409, "window_closed")
}

// rawRequest sends bytes as they are and reads one response.
func rawRequest(t *testing.T, h *harness, req string) *response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: body}
}

// TestProtocolErrorsAreJSON: requests Fiber rejects before any middleware
// runs still get the error shape and the security headers, and their
// contents stay out of the log.
func TestProtocolErrorsAreJSON(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name   string
		req    string
		status int
		code   string
	}{
		{"unknown method", "BREW /api/v1/agents HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented"},
		{"headers too large", "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer obs_leak" + strings.Repeat("A", 10<<10) + "\r\n\r\n", 431, "too_large"},
		{"body far too large", fmt.Sprintf("POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 100<<20), 413, "too_large"},
		{"bad content length", "POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\nX-Token: obs_leak\r\n\r\n", 400, "invalid"},
	} {
		r := rawRequest(t, h, tc.req)
		if r.status != tc.status {
			t.Errorf("%s: got %s, want %d", tc.name, r, tc.status)
			continue
		}
		checkErr(t, r, tc.status, tc.code)
		checkSecurityHeaders(t, tc.name, r)
	}
	if strings.Contains(h.logs.String(), "obs_leak") {
		t.Errorf("the log quotes a raw request:\n%s", h.logs.String())
	}
}
