package ws_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/ws"
	"github.com/onebox/onebox/internal/ws/wstest"
)

// TestSocketsPerProcessCapped: past MaxSockets a new socket is refused
// with 503 before the upgrade, the sockets already open keep working, and
// a freed place serves again.
func TestSocketsPerProcessCapped(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{MaxSockets: 2}})
	first, _ := e.Connect(t, e.Backend.AddSession("t1", "a1", "k1"), 0)
	second, _ := e.Connect(t, e.Backend.AddSession("t1", "a2", "k2"), 0)

	// The refusal is what docs/operations.md promises: 503 with
	// Retry-After, so the app (or a load balancer) tries again shortly.
	ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.URL, &websocket.DialOptions{HTTPClient: e.HTTPClient()})
	if err == nil {
		c.CloseNow()
		t.Fatal("a third socket was upgraded past MaxSockets 2")
	}
	if resp == nil {
		t.Fatalf("a third socket got no HTTP answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("a third socket: status %d, Retry-After %q; want 503 with Retry-After: 1",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := e.Server.Stats().CapacityRefusals; got != 1 {
		t.Fatalf("CapacityRefusals = %d, want 1 (dial error: %v)", got, err)
	}

	// The open ones still get events.
	e.Backend.Publish("t1", 1)
	for _, c := range []*wstest.Client{first, second} {
		if ev := c.NextEvent(t); ev.Seq != 1 {
			t.Fatalf("after a refusal an open socket got seq %d, want 1", ev.Seq)
		}
	}

	// One leaves; its place serves a new socket once it is gone.
	first.Close()
	deadline := time.Now().Add(wstest.Wait)
	for e.Server.Stats().Admitted > 1 {
		if time.Now().After(deadline) {
			t.Fatal("the closed socket is still counted")
		}
		time.Sleep(time.Millisecond)
	}
	third, _ := e.Connect(t, e.Backend.AddSession("t1", "a3", "k3"), 1)
	e.Backend.Publish("t1", 1)
	if ev := third.NextEvent(t); ev.Seq != 2 {
		t.Fatalf("the socket taking the freed place got seq %d, want 2", ev.Seq)
	}
}

// TestSocketsWithinFileLimit: the default cap leaves a tenth of the
// open-file limit, at least 1,024, to everything that is not a socket.
func TestSocketsWithinFileLimit(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		want  int
	}{
		{20000, 18000},
		{1 << 20, 1<<20 - (1<<20)/10},
		{4096, 3072},
		{1024, 0}, // too small to split: no cap
		{^uint64(0), 0},
	} {
		if got := ws.SocketsWithin(tc.limit); got != tc.want {
			t.Errorf("SocketsWithin(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}
