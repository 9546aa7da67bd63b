package ws_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/ws"
	"github.com/onebox/onebox/internal/ws/wstest"
)

// waitStat waits until get reports want, failing after wstest.Wait: some
// counters are bumped after the client already sees its close frame.
func waitStat(t *testing.T, name string, get func() uint64, want uint64) {
	t.Helper()
	deadline := time.Now().Add(wstest.Wait)
	for get() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", name, get(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLimitClosesCounted trips each socket limit (sockets per agent, frame
// flood, frame size) and reads its counter; each counts only its own.
func TestLimitClosesCounted(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{MaxSocketsPerAgent: 1, FrameRate: 1, FrameBurst: 3, ReadLimit: 1024}})
	st := e.Server.Stats
	if s := st(); s.AgentLimitCloses+s.FloodCloses+s.TooBigCloses != 0 {
		t.Fatalf("counters start at %+v", s)
	}

	// 1013: a second socket of an agent allowed one.
	tok := e.Backend.AddSession("t1", "a1", "k1")
	e.Connect(t, tok, 0)
	extra := wstest.Start(e.Dial(t, nil, nil))
	t.Cleanup(extra.Close)
	extra.Send(t, wstest.Hello{Type: "hello", Token: tok})
	if code := extra.CloseCode(t); code != websocket.StatusTryAgainLater {
		t.Fatalf("second socket: close %d, want 1013", code)
	}
	waitStat(t, "AgentLimitCloses", func() uint64 { return st().AgentLimitCloses }, 1)

	// 1008: frames faster than the rate.
	flood, _ := e.Connect(t, e.Backend.AddSession("t1", "a2", "k2"), 0)
	for range 20 {
		if err := flood.Conn.Write(context.Background(), websocket.MessageText, []byte(`{"type":"typing","conversation_id":"c1"}`)); err != nil {
			break
		}
	}
	if code := flood.CloseCode(t); code != websocket.StatusPolicyViolation {
		t.Fatalf("flood: close %d, want 1008", code)
	}
	waitStat(t, "FloodCloses", func() uint64 { return st().FloodCloses }, 1)

	// 1009: one frame over ReadLimit.
	big, _ := e.Connect(t, e.Backend.AddSession("t1", "a3", "k3"), 0)
	_ = big.Conn.Write(context.Background(), websocket.MessageText, []byte(`{"type":"typing","conversation_id":"`+strings.Repeat("c", 2048)+`"}`))
	if code := big.CloseCode(t); code != websocket.StatusMessageTooBig {
		t.Fatalf("big frame: close %d, want 1009", code)
	}
	waitStat(t, "TooBigCloses", func() uint64 { return st().TooBigCloses }, 1)

	if s := st(); s.AgentLimitCloses != 1 || s.FloodCloses != 1 {
		t.Errorf("counters after one hit each: %+v", s)
	}
}
