package wstest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/inbox"
)

// Wait is how long helpers wait for something that should happen.
const Wait = 10 * time.Second

// Frame is any server frame, decoded.
type Frame struct {
	Type           string       `json:"type"`
	Head           uint64       `json:"head"`
	Agent          *inbox.Agent `json:"agent"`
	Event          *inbox.Event `json:"event"`
	ConversationID string       `json:"conversation_id"`
	AgentID        string       `json:"agent_id"`
	Online         bool         `json:"online"`
	Raw            []byte       `json:"-"`
}

// Hello is the client's first frame.
type Hello struct {
	Type  string `json:"type"`
	Token string `json:"token"`
	Since uint64 `json:"since"`
}

// Dial opens a raw socket (nobody reads it).
func (e *Env) Dial(t testing.TB, client *http.Client, header http.Header) *websocket.Conn {
	t.Helper()
	c, err := e.TryDial(client, header)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

// TryDial opens a raw socket or says why it could not.
func (e *Env) TryDial(client *http.Client, header http.Header) (*websocket.Conn, error) {
	if client == nil {
		client = e.HTTPClient()
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.URL, &websocket.DialOptions{HTTPClient: client, HTTPHeader: header})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// Connect dials, says hello and returns the client (reading in the
// background) with the welcome frame. It closes the client at cleanup.
func (e *Env) Connect(t testing.TB, token string, since uint64) (*Client, Frame) {
	t.Helper()
	c := Start(e.Dial(t, nil, nil))
	t.Cleanup(c.Close)
	c.Send(t, Hello{Type: "hello", Token: token, Since: since})
	w := c.Next(t)
	if w.Type != "welcome" {
		t.Fatalf("first frame = %s, want welcome", w.Raw)
	}
	return c, w
}

// Client reads a socket in the background into a channel, so it answers
// pings and the test reads frames with deadlines.
type Client struct {
	Conn   *websocket.Conn
	frames chan Frame
	done   chan struct{}
	stop   chan struct{}
	once   sync.Once
	err    error // why reading stopped; set before done is closed
	paused atomic.Pointer[chan struct{}]
}

// Start begins reading c in the background.
func Start(c *websocket.Conn) *Client {
	cl := &Client{Conn: c, frames: make(chan Frame, 4096), done: make(chan struct{}), stop: make(chan struct{})}
	go cl.read()
	return cl
}

func (c *Client) read() {
	defer close(c.done)
	for {
		if gate := c.paused.Load(); gate != nil {
			select {
			case <-*gate:
			case <-c.stop:
				c.err = errors.New("client closed")
				return
			}
		}
		_, data, err := c.Conn.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		var f Frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.err = err
			return
		}
		f.Raw = data
		select {
		case c.frames <- f:
		case <-c.stop:
			c.err = errors.New("client closed")
			return
		}
	}
}

// Send writes v as a JSON text frame.
func (c *Client) Send(t testing.TB, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := c.Conn.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatalf("send %s: %v", data, err)
	}
}

// Next returns the next frame, failing the test after Wait.
func (c *Client) Next(t testing.TB) Frame {
	t.Helper()
	f, err := c.NextWithin(Wait)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// NextWithin returns the next frame, or an error when none came within d
// or the socket ended.
func (c *Client) NextWithin(d time.Duration) (Frame, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case f := <-c.frames:
		return f, nil
	case <-c.done:
		select {
		case f := <-c.frames:
			return f, nil
		default:
		}
		return Frame{}, errors.New("socket ended: " + errString(c.err))
	case <-timer.C:
		return Frame{}, errors.New("no frame within " + d.String())
	}
}

// NextSkipping returns the next frame whose type is not in skip.
func (c *Client) NextSkipping(t testing.TB, skip ...string) Frame {
	t.Helper()
	for {
		f := c.Next(t)
		if !contains(skip, f.Type) {
			return f
		}
	}
}

// NextEvent returns the next event frame's event, skipping presence and
// typing frames.
func (c *Client) NextEvent(t testing.TB) *inbox.Event {
	t.Helper()
	f := c.NextSkipping(t, "presence", "typing")
	if f.Type != "event" || f.Event == nil {
		t.Fatalf("frame = %s, want an event", f.Raw)
	}
	return f.Event
}

// CloseCode waits for the socket to end and returns its close status
// (-1 when it ended without a close frame). Frames still queued are
// discarded.
func (c *Client) CloseCode(t testing.TB) websocket.StatusCode {
	t.Helper()
	timer := time.NewTimer(Wait)
	defer timer.Stop()
	for {
		select {
		case <-c.frames:
		case <-c.done:
			return websocket.CloseStatus(c.err)
		case <-timer.C:
			t.Fatalf("socket still open after %v", Wait)
		}
	}
}

// Pause stops reading the socket (after at most one more frame) until
// resume is called, like a client that cannot keep up.
func (c *Client) Pause() (resume func()) {
	gate := make(chan struct{})
	c.paused.Store(&gate)
	return func() {
		c.paused.Store(nil)
		close(gate)
	}
}

// Done is closed when the socket has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the socket ended; valid once Done is closed.
func (c *Client) Err() error { return c.err }

// Close cuts the socket and stops the reader.
func (c *Client) Close() {
	c.once.Do(func() {
		close(c.stop)
		_ = c.Conn.CloseNow()
		<-c.done
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
