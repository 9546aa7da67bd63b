package ws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/ws"
	"github.com/onebox/onebox/internal/ws/wstest"
)

// fuzzReadLimit is the server's largest client message in the frame
// fuzzer: small, so messages around it are cheap to send.
const fuzzReadLimit = 1024

// fuzzWait bounds every step of one input: a server that neither answers
// nor closes within it is hung.
const fuzzWait = 3 * time.Second

// liveFuzz is a real live stream on 127.0.0.1 and the sockets the frame
// fuzzer talks to it through.
type liveFuzz struct {
	env *wstest.Env
	// token signs the socket reused across inputs after hello; fresh is
	// another tenant's, for sockets whose first frame is fuzzed, so their
	// comings and goings never reach the reused socket.
	token, fresh string
	cur          *wstest.Client
}

// open dials a socket and starts reading it.
func (l *liveFuzz) open(t *testing.T) *wstest.Client {
	t.Helper()
	c, err := l.env.TryDial(nil, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return wstest.Start(c)
}

// live returns the authenticated socket, opening a new one when the last
// input closed it.
func (l *liveFuzz) live(t *testing.T) *wstest.Client {
	t.Helper()
	if l.cur != nil {
		select {
		case <-l.cur.Done():
			l.cur.Close()
			l.cur = nil
		default:
			return l.cur
		}
	}
	c := l.open(t)
	hello, _ := json.Marshal(wstest.Hello{Type: "hello", Token: l.token})
	ctx, cancel := context.WithTimeout(context.Background(), fuzzWait)
	defer cancel()
	if err := c.Conn.Write(ctx, websocket.MessageText, hello); err != nil {
		c.Close()
		t.Fatalf("hello: %v", err)
	}
	if w, err := c.NextWithin(fuzzWait); err != nil || w.Type != "welcome" {
		c.Close()
		t.Fatalf("a valid hello got %s (%v), want welcome", w.Raw, err)
	}
	l.cur = c
	return c
}

func (l *liveFuzz) close() {
	if l.cur != nil {
		l.cur.Close()
	}
}

// expect is what the protocol says the server does with a message: the
// close code it ends the socket with (CONTRACT.md's live stream section and
// internal/ws/protocol.go: 4401, 1007, 1003, 1009), or 0 when the socket
// goes on (after a welcome, for a first frame).
func expect(afterHello, binary bool, msg []byte, token string) websocket.StatusCode {
	switch {
	case len(msg) > fuzzReadLimit:
		return websocket.StatusMessageTooBig
	case binary:
		return websocket.StatusUnsupportedData
	}
	if afterHello {
		var f struct {
			Type           string `json:"type"`
			ConversationID string `json:"conversation_id"`
		}
		if json.Unmarshal(msg, &f) != nil {
			return websocket.StatusInvalidFramePayloadData
		}
		return 0 // typing is relayed, anything else ignored
	}
	var h wstest.Hello
	if json.Unmarshal(msg, &h) != nil {
		return websocket.StatusInvalidFramePayloadData
	}
	if h.Type != "hello" || h.Token != token {
		return 4401
	}
	return 0
}

// padTo makes msg n bytes long with JSON whitespace (still the same JSON
// when it was JSON), for sizes around the read limit.
func padTo(msg []byte, n int) []byte {
	if len(msg) >= n {
		return msg
	}
	return append(append([]byte{}, msg...), bytes.Repeat([]byte(" "), n-len(msg))...)
}

// FuzzLiveFrames sends arbitrary client messages (text or binary, small or
// around the read limit) to the real connection handling over a loopback
// WebSocket, as a socket's first frame or after a valid hello. The server
// does what the protocol says for each: a welcome for a valid hello, 4401
// for any other first frame that is JSON, 1007 for one that is not, 1003
// for binary, 1009 over the limit, and after hello an open socket that
// still answers a ping; no input panics it, hangs it or ends a socket with
// a code outside the documented ones.
func FuzzLiveFrames(f *testing.F) {
	l := &liveFuzz{}
	f.Cleanup(l.close)
	l.env = wstest.NewEnv(f, wstest.Options{WS: ws.Options{
		ReadLimit: fuzzReadLimit, MaxSocketsPerAgent: -1,
		// Inputs reuse one socket far faster than a person types: the
		// flood and typing limits have their own tests.
		FrameRate: 1e9, FrameBurst: 1 << 30, TypingInterval: time.Nanosecond,
	}})
	l.token = l.env.Backend.AddSession("t1", "a1", "k1")
	l.fresh = l.env.Backend.AddSession("t2", "a2", "k2")
	for _, s := range []string{
		`{"type":"hello","token":"` + l.fresh + `","since":0}`, `{"type":"hello","token":"` + l.fresh + `","since":99}`,
		`{"type":"hello","token":"nope"}`, `{"type":"hello"}`, `{"type":"typing","conversation_id":"c1"}`,
		`{"type":"typing","conversation_id":"` + string(bytes.Repeat([]byte("x"), 200)) + `"}`, `{"type":"typing","conversation_id":5}`,
		`{"type":"ping"}`, `{"type":"hello","since":-1}`, `{"type":"hello","since":1e30}`, `null`, `[]`, `"hello"`, `{`, ``,
		"\xff\xfe", `{"type":"typing","conversation_id":"\u0000"}`,
	} {
		for _, after := range []bool{false, true} {
			f.Add(after, false, uint8(0), []byte(s))
		}
	}
	f.Add(false, true, uint8(0), []byte(`{"type":"hello","token":"`+l.fresh+`"}`))
	f.Add(true, true, uint8(0), []byte(`{"type":"typing"}`))
	f.Add(false, false, uint8(127), []byte(`{"type":"hello","token":"`+l.fresh+`"}`))
	f.Add(false, false, uint8(129), []byte(`{"type":"hello","token":"`+l.fresh+`"}`))
	f.Add(true, false, uint8(128), []byte(`{"type":"typing","conversation_id":"c1"}`))
	f.Add(true, false, uint8(255), []byte(`{"type":"typing","conversation_id":"c1"}`))
	f.Fuzz(func(t *testing.T, afterHello, binary bool, pad uint8, msg []byte) {
		if pad > 0 {
			msg = padTo(msg, fuzzReadLimit-128+int(pad)) // limit-127 to limit+127 bytes
		}
		typ := websocket.MessageText
		if binary {
			typ = websocket.MessageBinary
		}
		var c *wstest.Client
		if afterHello {
			c = l.live(t)
		} else {
			c = l.open(t)
			defer c.Close()
		}
		want := expect(afterHello, binary, msg, l.fresh)
		ctx, cancel := context.WithTimeout(context.Background(), fuzzWait)
		defer cancel()
		if err := c.Conn.Write(ctx, typ, msg); err != nil && want == 0 {
			t.Fatalf("write %q: %v", truncated(msg), err)
		}
		switch {
		case want != 0:
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatalf("%q (binary %v, after hello %v): socket still open after %v, want close %d", truncated(msg), binary, afterHello, fuzzWait, want)
			}
			if got := websocket.CloseStatus(c.Err()); got != want {
				t.Fatalf("%q (binary %v, after hello %v): closed with %d (%v), want %d", truncated(msg), binary, afterHello, got, c.Err(), want)
			}
		case !afterHello:
			if fr, err := c.NextWithin(fuzzWait); err != nil || fr.Type != "welcome" {
				t.Fatalf("%q: answered %s (%v), want welcome", truncated(msg), fr.Raw, err)
			}
		default:
			// The frame was handled and the socket lives: a ping sent
			// after it is answered (frames are read in order).
			if err := c.Conn.Ping(ctx); err != nil {
				t.Fatalf("%q: no pong after it: %v (socket: %v)", truncated(msg), err, c.Err())
			}
			for drained := false; !drained; {
				if _, err := c.NextWithin(0); err != nil {
					drained = true
				}
			}
		}
	})
}

func truncated(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
