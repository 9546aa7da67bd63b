package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/ws/wstest"
)

// A page on another site cannot open the live stream with a session token
// it got hold of: the handshake itself is refused with 403, before any
// hello frame is read. The same origin works.
func TestWebSocketRefusesCrossSiteOrigin(t *testing.T) {
	wstest.CheckGoroutines(t)
	e := wstest.NewEnv(t, wstest.Options{})
	tok := e.Backend.AddSession("A", "a1", "k1")

	for _, origin := range []string{"https://evil.example", "http://evil.example", "null"} {
		ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
		c, resp, err := websocket.Dial(ctx, e.URL, &websocket.DialOptions{
			HTTPClient: e.HTTPClient(), HTTPHeader: http.Header{"Origin": {origin}},
		})
		cancel()
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if err == nil {
			// Had it opened, a valid hello must still not be welcomed.
			cl := wstest.Start(c)
			cl.Send(t, wstest.Hello{Type: "hello", Token: tok})
			cl.Close()
			t.Errorf("origin %s: handshake succeeded, want 403", origin)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %s: dial err %v, response %v; want a 403 handshake answer", origin, err, resp)
		}
	}

	c := wstest.Start(e.Dial(t, nil, http.Header{"Origin": {e.Origin}}))
	defer c.Close()
	c.Send(t, wstest.Hello{Type: "hello", Token: tok})
	if f := c.Next(t); f.Type != "welcome" {
		t.Fatalf("same origin: got %s, want welcome", f.Raw)
	}
}
