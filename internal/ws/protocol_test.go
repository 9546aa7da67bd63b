package ws_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/ws"
	"github.com/onebox/onebox/internal/ws/wstest"
)

func TestHelloWelcomeReplayThenLive(t *testing.T) {
	for _, mode := range []struct {
		name     string
		blocking bool
	}{{"handoff", false}, {"blocking", true}} {
		t.Run(mode.name, func(t *testing.T) {
			checkLeaks(t)
			e := wstest.NewEnv(t, wstest.Options{Blocking: mode.blocking})
			tok := e.Backend.AddSession("t1", "a1", "k1")
			e.Backend.Publish("t1", 3)

			c, w := e.Connect(t, tok, 0)
			if w.Head != 3 {
				t.Errorf("welcome head = %d, want 3", w.Head)
			}
			if w.Agent == nil || w.Agent.ID != "a1" || !w.Agent.Online {
				t.Errorf("welcome agent = %+v, want a1 online", w.Agent)
			}
			for want := uint64(1); want <= 3; want++ {
				if ev := c.NextEvent(t); ev.Seq != want {
					t.Fatalf("replayed seq %d, want %d", ev.Seq, want)
				}
			}
			e.Backend.Publish("t1", 1)
			if ev := c.NextEvent(t); ev.Seq != 4 || ev.Type != inbox.EventMessageCreated {
				t.Fatalf("live event = %+v, want seq 4 message.created", ev)
			}
			if got := e.Server.Stats().Connections; got != 1 {
				t.Errorf("Stats().Connections = %d, want 1", got)
			}
		})
	}
}

func TestHelloResumesAfterSince(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{ReplayPage: 2}})
	tok := e.Backend.AddSession("t1", "a1", "k1")
	e.Backend.Publish("t1", 7)
	c, w := e.Connect(t, tok, 4)
	if w.Head != 7 {
		t.Fatalf("head = %d, want 7", w.Head)
	}
	for want := uint64(5); want <= 7; want++ {
		if ev := c.NextEvent(t); ev.Seq != want {
			t.Fatalf("seq %d, want %d", ev.Seq, want)
		}
	}
}

func TestHelloTimeoutCloses4401(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{HelloTimeout: 200 * time.Millisecond}})
	c := wstest.Start(e.Dial(t, nil, nil))
	defer c.Close()
	start := time.Now()
	if code := c.CloseCode(t); code != 4401 {
		t.Fatalf("close code = %d, want 4401", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v, want about 200ms", d)
	}
	if got := e.Server.Stats().AuthFailures; got != 1 {
		t.Errorf("AuthFailures = %d, want 1", got)
	}
}

func TestHelloRejections(t *testing.T) {
	cases := []struct {
		name string
		send func(t *testing.T, c *wstest.Client)
		want websocket.StatusCode
	}{
		{"bad token", func(t *testing.T, c *wstest.Client) {
			c.Send(t, wstest.Hello{Type: "hello", Token: "nope"})
		}, 4401},
		{"not a hello", func(t *testing.T, c *wstest.Client) {
			c.Send(t, map[string]string{"type": "typing", "conversation_id": "c1"})
		}, 4401},
		{"malformed JSON", func(t *testing.T, c *wstest.Client) {
			if err := c.Conn.Write(context.Background(), websocket.MessageText, []byte(`{"type":`)); err != nil {
				t.Fatal(err)
			}
		}, websocket.StatusInvalidFramePayloadData},
		{"binary frame", func(t *testing.T, c *wstest.Client) {
			if err := c.Conn.Write(context.Background(), websocket.MessageBinary, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}, websocket.StatusUnsupportedData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			e := wstest.NewEnv(t, wstest.Options{})
			c := wstest.Start(e.Dial(t, nil, nil))
			defer c.Close()
			tc.send(t, c)
			if code := c.CloseCode(t); code != tc.want {
				t.Fatalf("close code = %d, want %d", code, tc.want)
			}
		})
	}
}

func TestMalformedFrameAfterHelloCloses1007AndUnknownIsIgnored(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{})
	tok := e.Backend.AddSession("t1", "a1", "k1")
	c, _ := e.Connect(t, tok, 0)
	c.Send(t, map[string]any{"type": "from-the-future", "x": 1})
	e.Backend.Publish("t1", 1)
	if ev := c.NextEvent(t); ev.Seq != 1 {
		t.Fatalf("seq %d, want 1", ev.Seq)
	}
	if err := c.Conn.Write(context.Background(), websocket.MessageText, []byte(`not json`)); err != nil {
		t.Fatal(err)
	}
	if code := c.CloseCode(t); code != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("close code = %d, want 1007", code)
	}
}

func TestResetWhenSinceTooOldOrAhead(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{})
	tok := e.Backend.AddSession("t1", "a1", "k1")
	e.Backend.Publish("t1", 10)
	e.Backend.Trim("t1", 6) // seqs 1..5 are gone

	for _, since := range []uint64{2, 50} {
		head := e.Backend.Head("t1")
		c, w := e.Connect(t, tok, since)
		if w.Head != head {
			t.Fatalf("since %d: head = %d, want %d", since, w.Head, head)
		}
		f := c.NextSkipping(t, "presence")
		if f.Type != "reset" || f.Head != head {
			t.Fatalf("since %d: frame = %s, want reset head %d", since, f.Raw, head)
		}
		e.Backend.Publish("t1", 1)
		want := e.Backend.Head("t1")
		if ev := c.NextEvent(t); ev.Seq != want {
			t.Fatalf("since %d: live seq %d after reset, want %d", since, ev.Seq, want)
		}
		c.Close()
	}

	// Since within what is retained: no reset.
	c, _ := e.Connect(t, tok, 9)
	if f := c.NextSkipping(t, "presence"); f.Type != "event" || f.Event.Seq != 10 {
		t.Fatalf("frame = %s, want event 10", f.Raw)
	}
}

func TestTenantIsolation(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{})
	ta := e.Backend.AddSession("A", "a1", "ka")
	tb := e.Backend.AddSession("B", "b1", "kb")
	e.Backend.Publish("A", 3)
	ca, _ := e.Connect(t, ta, 0)
	cb, wb := e.Connect(t, tb, 0)
	if wb.Head != 0 {
		t.Fatalf("tenant B head = %d, want 0", wb.Head)
	}
	e.Backend.Publish("A", 5)
	e.Backend.Publish("B", 2)
	for want := uint64(1); want <= 2; want++ {
		ev := cb.NextEvent(t)
		if tenant := wstest.EventTenant(ev); tenant != "B" || ev.Seq != want {
			t.Fatalf("B got seq %d of tenant %q, want seq %d of B", ev.Seq, tenant, want)
		}
	}
	for want := uint64(1); want <= 8; want++ {
		ev := ca.NextEvent(t)
		if tenant := wstest.EventTenant(ev); tenant != "A" || ev.Seq != want {
			t.Fatalf("A got seq %d of tenant %q, want seq %d of A", ev.Seq, tenant, want)
		}
	}
	// Nothing else is queued for B: the next frame is B's next event.
	e.Backend.Publish("B", 1)
	if ev := cb.NextEvent(t); wstest.EventTenant(ev) != "B" || ev.Seq != 3 {
		t.Fatalf("B got %+v, want its seq 3", ev)
	}
}

func TestTypingAndPresence(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{TypingInterval: time.Nanosecond}})
	a1 := e.Backend.AddSession("A", "a1", "k1")
	a1b := e.Backend.AddSession("A", "a1", "k1b")
	a2 := e.Backend.AddSession("A", "a2", "k2")
	b1 := e.Backend.AddSession("B", "b1", "k3")

	c2, _ := e.Connect(t, a2, 0)
	if f := c2.Next(t); f.Type != "presence" || f.AgentID != "a2" || !f.Online {
		t.Fatalf("a2 first frame = %s, want its own presence", f.Raw)
	}
	cb, _ := e.Connect(t, b1, 0)
	c1, _ := e.Connect(t, a1, 0)
	if f := c2.Next(t); f.Type != "presence" || f.AgentID != "a1" || !f.Online {
		t.Fatalf("a2 got %s, want presence a1 online", f.Raw)
	}
	c1b, _ := e.Connect(t, a1b, 0) // a1's second socket: no new presence

	if got := e.Hub.Online("A"); len(got) != 2 || got[0] != "a1" || got[1] != "a2" {
		t.Errorf("Online(A) = %v, want [a1 a2]", got)
	}

	c1.Send(t, map[string]string{"type": "typing", "conversation_id": "conv-9"})
	f := c2.Next(t)
	if f.Type != "typing" || f.ConversationID != "conv-9" || f.AgentID != "a1" {
		t.Fatalf("a2 got %s, want typing conv-9 from a1", f.Raw)
	}
	// The typing agent's own sockets and other tenants get nothing: their
	// next frame (presence aside) is the event published after it.
	e.Backend.Publish("A", 1)
	e.Backend.Publish("B", 1)
	for name, c := range map[string]*wstest.Client{"a1": c1, "a1b": c1b, "b1": cb} {
		if f := c.NextSkipping(t, "presence"); f.Type != "event" {
			t.Errorf("%s got %s, want only the event", name, f.Raw)
		}
	}
	if f := c2.Next(t); f.Type != "event" {
		t.Fatalf("a2 got %s, want the event", f.Raw)
	}

	c1.Close()
	c1b.Close()
	if f := c2.Next(t); f.Type != "presence" || f.AgentID != "a1" || f.Online {
		t.Fatalf("a2 got %s, want presence a1 offline", f.Raw)
	}
	if got := e.Hub.Online("A"); len(got) != 1 || got[0] != "a2" {
		t.Errorf("Online(A) = %v, want [a2]", got)
	}
}

func TestDisconnectByKeyCloses4401WithinASecond(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{})
	revoked := e.Backend.AddSession("A", "a1", "k1")
	revoked2 := e.Backend.AddSession("A", "a1", "k1") // second device, same key
	sameAgent := e.Backend.AddSession("A", "a1", "k2")
	other := e.Backend.AddSession("A", "a2", "k3")
	cr, _ := e.Connect(t, revoked, 0)
	cr2, _ := e.Connect(t, revoked2, 0)
	cs, _ := e.Connect(t, sameAgent, 0)
	co, _ := e.Connect(t, other, 0)

	start := time.Now()
	e.Hub.Disconnect("A", inbox.Match{KeyID: "k1"})
	for _, c := range []*wstest.Client{cr, cr2} {
		if code := c.CloseCode(t); code != 4401 {
			t.Fatalf("close code = %d, want 4401", code)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("closed after %v, want within 1s", d)
	}
	e.Backend.Publish("A", 1)
	for _, c := range []*wstest.Client{cs, co} {
		if ev := c.NextEvent(t); ev.Seq != 1 {
			t.Fatalf("surviving socket got seq %d, want 1", ev.Seq)
		}
	}
}

func TestRevokedTokenCannotConnect(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{})
	tok := e.Backend.AddSession("A", "a1", "k1")
	e.Backend.Revoke(tok)
	c := wstest.Start(e.Dial(t, nil, nil))
	defer c.Close()
	c.Send(t, wstest.Hello{Type: "hello", Token: tok})
	if code := c.CloseCode(t); code != 4401 {
		t.Fatalf("close code = %d, want 4401", code)
	}
}

func TestShutdownCloses1001(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{})
	var clients []*wstest.Client
	for _, agent := range []string{"a1", "a2", "a3"} {
		c, _ := e.Connect(t, e.Backend.AddSession("A", agent, "k"+agent), 0)
		clients = append(clients, c)
	}
	idle := wstest.Start(e.Dial(t, nil, nil)) // upgraded, no hello yet
	defer idle.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Server.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range append(clients, idle) {
		if code := c.CloseCode(t); code != websocket.StatusGoingAway {
			t.Fatalf("close code = %d, want 1001", code)
		}
	}
	if n := e.Server.Stats().Connections; n != 0 {
		t.Errorf("Connections after Shutdown = %d, want 0", n)
	}
	// New upgrades are refused.
	if c, err := e.TryDial(nil, nil); err == nil {
		c.CloseNow()
		t.Fatal("dial after Shutdown succeeded")
	}
}

func TestGapIsFilledFromTheStore(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{})
	tok := e.Backend.AddSession("A", "a1", "k1")
	c, _ := e.Connect(t, tok, 0)

	e.Backend.Publish("A", 1)
	e.Backend.Append("A") // seq 2 committed, its broker message lost
	e.Backend.Publish("A", 1)
	for want := uint64(1); want <= 3; want++ {
		if ev := c.NextEvent(t); ev.Seq != want {
			t.Fatalf("seq %d, want %d", ev.Seq, want)
		}
	}
	if got := e.Hub.Stats().GapFills; got != 1 {
		t.Errorf("GapFills = %d, want 1", got)
	}
}

func TestSlowConsumerCloses4008(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{Hub: hub.Options{QueueSize: 8}})
	e.Backend.DataSize = 4 << 10
	tok := e.Backend.AddSession("A", "a1", "k1")

	// The slow client says hello and then stops reading; a tiny kernel
	// receive buffer makes the server's writes back up quickly.
	slow := wstest.Start(e.Dial(t, e.SmallReceiveBuffer(), nil))
	defer slow.Close()
	slow.Send(t, wstest.Hello{Type: "hello", Token: tok})
	if f := slow.Next(t); f.Type != "welcome" {
		t.Fatalf("got %s, want welcome", f.Raw)
	}
	resume := slow.Pause()
	deadline := time.Now().Add(wstest.Wait)
	for e.Hub.Stats().SlowCloses == 0 {
		if time.Now().After(deadline) {
			resume()
			t.Fatalf("no slow-consumer close after publishing %d events", e.Backend.Head("A"))
		}
		e.Backend.Publish("A", 1)
	}
	resume()
	if code := slow.CloseCode(t); code != 4008 {
		t.Fatalf("slow client close code = %d, want 4008", code)
	}
	if got := e.Server.Stats().SlowCloses; got != 1 {
		t.Errorf("Stats().SlowCloses = %d, want 1", got)
	}
}

func TestPingTimeoutClosesUnresponsiveSocket(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{PingInterval: 80 * time.Millisecond, PingTimeout: 500 * time.Millisecond}})
	alive, _ := e.Connect(t, e.Backend.AddSession("A", "a1", "k1"), 0)

	raw := e.Dial(t, nil, nil) // says hello, then never reads: pongs never come
	defer raw.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), wstest.Wait)
	defer cancel()
	if err := raw.Write(ctx, websocket.MessageText, []byte(`{"type":"hello","token":"`+e.Backend.AddSession("A", "a2", "k2")+`"}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wstest.Wait)
	for e.Server.Stats().PingFailures == 0 || e.Server.Stats().Connections != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats = %+v, want a ping failure and 1 connection left", e.Server.Stats())
		}
		time.Sleep(10 * time.Millisecond) // polling counters
	}
	// The responsive socket survived several ping rounds.
	e.Backend.Publish("A", 1)
	if ev := alive.NextEvent(t); ev.Seq != 1 {
		t.Fatalf("seq %d, want 1", ev.Seq)
	}
}

func TestOriginChecked(t *testing.T) {
	checkLeaks(t)
	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{AllowedOrigins: []string{"app.example.com"}}})
	for origin, ok := range map[string]bool{
		e.Origin:                   true, // same host
		"https://app.example.com":  true,
		"https://evil.example.com": false,
	} {
		h := map[string][]string{"Origin": {origin}}
		c, err := e.TryDial(nil, h)
		if ok != (err == nil) {
			t.Errorf("origin %s: dial err = %v, want ok=%v", origin, err, ok)
		}
		if c != nil {
			c.CloseNow()
		}
	}
}
