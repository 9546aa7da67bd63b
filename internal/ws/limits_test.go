package ws_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/ws"
	"github.com/onebox/onebox/internal/ws/wstest"
)

func TestSocketsPerAgentCapped1013(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{MaxSocketsPerAgent: 2}})
	tok := e.Backend.AddSession("t1", "a1", "k1")
	first, _ := e.Connect(t, tok, 0)
	e.Connect(t, tok, 0)

	extra := wstest.Start(e.Dial(t, nil, nil))
	t.Cleanup(extra.Close)
	extra.Send(t, wstest.Hello{Type: "hello", Token: tok})
	if code := extra.CloseCode(t); code != websocket.StatusTryAgainLater {
		t.Fatalf("third socket of one agent: close code %d, want 1013", code)
	}
	// Another agent has its own allowance.
	e.Connect(t, e.Backend.AddSession("t1", "a2", "k2"), 0)

	// A closed socket frees its place.
	first.Close()
	deadline := time.Now().Add(wstest.Wait)
	for e.Server.Stats().Connections > 2 {
		if time.Now().After(deadline) {
			t.Fatal("the closed socket is still counted")
		}
		time.Sleep(time.Millisecond)
	}
	e.Connect(t, tok, 0)
}

func TestClientFrameFloodCloses1008(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{FrameRate: 1, FrameBurst: 5}})
	tok := e.Backend.AddSession("t1", "a1", "k1")
	c, _ := e.Connect(t, tok, 0)
	// Within the burst nothing happens.
	for range 4 {
		c.Send(t, map[string]any{"type": "typing", "conversation_id": "c1"})
	}
	e.Backend.Publish("t1", 1)
	if ev := c.NextSkipping(t, "typing", "presence"); ev.Event == nil || ev.Event.Seq != 1 {
		t.Fatalf("after frames within the burst got %s, want event 1", ev.Raw)
	}
	for range 50 {
		if err := c.Conn.Write(context.Background(), websocket.MessageText, []byte(`{"type":"typing","conversation_id":"c1"}`)); err != nil {
			break // closed by the server
		}
	}
	if code := c.CloseCode(t); code != websocket.StatusPolicyViolation {
		t.Fatalf("flood: close code %d, want 1008", code)
	}
}
