package httpapi_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/onebox/onebox/internal/ws/wstest"
)

func TestWebSocketHandlerAnswers426ToPlainHTTP(t *testing.T) {
	wstest.CheckGoroutines(t)
	e := wstest.NewEnv(t, wstest.Options{})
	cases := map[string]http.Header{
		"no upgrade":      {},
		"upgrade h2c":     {"Connection": {"Upgrade"}, "Upgrade": {"h2c"}},
		"no conn upgrade": {"Upgrade": {"websocket"}},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, e.HTTPURL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range h {
				req.Header[k] = v
			}
			resp, err := e.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusUpgradeRequired {
				t.Fatalf("status = %d, want 426 (body %s)", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Upgrade"); got != "websocket" {
				t.Errorf("Upgrade header = %q, want websocket", got)
			}
			var eb struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != "invalid" || eb.Error.Message == "" {
				t.Errorf("body = %s, want an invalid error (%v)", body, err)
			}
		})
	}
}

// The handler hands serve a faithful copy of the upgrade request, in both
// hijack modes, and the session works over it.
func TestWebSocketHandlerCopiesTheRequest(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		name := map[bool]string{false: "handoff", true: "blocking"}[blocking]
		t.Run(name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			var mu sync.Mutex
			var seen *http.Request
			e := wstest.NewEnv(t, wstest.Options{
				Blocking: blocking,
				Serve: func(next func(net.Conn, *http.Request)) func(net.Conn, *http.Request) {
					return func(nc net.Conn, r *http.Request) {
						mu.Lock()
						seen = r
						mu.Unlock()
						next(nc, r)
					}
				},
			})
			tok := e.Backend.AddSession("A", "a1", "k1")
			c := wstest.Start(e.Dial(t, nil, http.Header{"X-Probe": {"p-1"}}))
			defer c.Close()
			c.Send(t, wstest.Hello{Type: "hello", Token: tok})
			if f := c.Next(t); f.Type != "welcome" {
				t.Fatalf("got %s, want welcome", f.Raw)
			}
			mu.Lock()
			r := seen
			mu.Unlock()
			host := strings.TrimPrefix(e.Origin, "http://")
			if r.Method != http.MethodGet || r.URL.Path != "/api/v1/ws" || r.Host != host || r.ProtoMinor != 1 {
				t.Errorf("request = %s %s host %q proto %s", r.Method, r.URL, r.Host, r.Proto)
			}
			if r.Header.Get("X-Probe") != "p-1" || r.Header.Get("Sec-WebSocket-Key") == "" {
				t.Errorf("headers not copied: %v", r.Header)
			}
			if h, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || h != "127.0.0.1" {
				t.Errorf("RemoteAddr = %q", r.RemoteAddr)
			}
			e.Backend.Publish("A", 1)
			if ev := c.NextEvent(t); ev.Seq != 1 {
				t.Errorf("seq %d, want 1", ev.Seq)
			}
		})
	}
}
