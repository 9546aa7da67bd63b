package ws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

// conn is one WebSocket session. Its fields are what an idle socket keeps:
// the principal is dropped once the replay is done.
type conn struct {
	srv     *Server
	ws      *websocket.Conn
	nc      net.Conn
	cork    *corkWriter
	sub     *hub.Subscription
	agentID string

	live       atomic.Bool // replay done, reader running: pings can be answered
	closing    atomic.Bool // a close was started; only the first one counts
	done       chan struct{}
	lastTyping int64 // unix nanos; reader goroutine only
	// agentKey is set while the socket counts against its agent's cap.
	agentKey string
	// frameTokens and frameAt are the client-frame bucket (reader
	// goroutine only).
	frameTokens float64
	frameAt     int64 // unix nanos
}

var _ hub.Sink = (*conn)(nil)

// handshake runs the protocol up to the live phase: hello, subscribe,
// replay. It reports whether the socket is still open.
func (c *conn) handshake() bool {
	p, token, since, ok := c.hello()
	if !ok {
		return false
	}
	c.agentID = p.Agent.ID
	if key := p.Tenant.ID + "/" + p.Agent.ID; c.srv.claimAgent(key) {
		c.agentKey = key
	} else {
		c.srv.agentLimitCloses.Add(1)
		c.shut(websocket.StatusTryAgainLater, "too many sockets for this agent", false)
		return false
	}
	sub, err := c.srv.opts.Hub.Subscribe(p.Tenant.ID, p.Session, c)
	if err != nil {
		c.srv.log.Error("ws: subscribe", "tenant", p.Tenant.ID, "err", err)
		c.shut(websocket.StatusTryAgainLater, "live stream unavailable", false)
		return false
	}
	c.sub = sub
	// A key revoked between the first check and Subscribe would have had
	// its Disconnect miss this socket. Checking again now that Disconnect
	// would find it closes that window.
	if _, ok := c.authenticate(token); !ok {
		return false
	}
	if !c.replay(p, since) {
		return false
	}
	c.live.Store(true)
	return true
}

// run is the live phase: read client frames until the socket ends, then
// clean up.
func (c *conn) run() {
	c.readLoop()
	c.end()
}

// end leaves the hub, finishes the close handshake and releases the
// connection.
func (c *conn) end() {
	if c.sub != nil {
		c.sub.Close()
	}
	c.wait()
	if c.agentKey != "" {
		c.srv.releaseAgent(c.agentKey)
	}
	c.srv.untrack(c)
	_ = c.nc.Close()
	c.srv.serving.Done()
}

// hello waits for the first frame, which must authenticate the socket.
func (c *conn) hello() (p inbox.Principal, token string, since uint64, ok bool) {
	timer := time.AfterFunc(c.srv.opts.HelloTimeout, func() {
		c.srv.authFailures.Add(1)
		c.shut(closeUnauthorized, "no hello", true)
	})
	typ, data, err := c.ws.Read(context.Background())
	if !timer.Stop() || err != nil {
		c.srv.countReadError(err)
		return p, "", 0, false
	}
	if typ != websocket.MessageText {
		c.shut(websocket.StatusUnsupportedData, "text frames only", false)
		return p, "", 0, false
	}
	h, err := decodeHello(data)
	if err != nil {
		c.shut(websocket.StatusInvalidFramePayloadData, "malformed JSON", false)
		return p, "", 0, false
	}
	if h.Type != "hello" || h.Token == "" {
		c.srv.authFailures.Add(1)
		c.shut(closeUnauthorized, "expected hello", false)
		return p, "", 0, false
	}
	p, ok = c.authenticate(h.Token)
	return p, h.Token, h.Since, ok
}

func (c *conn) authenticate(token string) (inbox.Principal, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.opts.CallTimeout)
	defer cancel()
	p, err := c.srv.opts.Backend.Authenticate(ctx, token)
	switch {
	case err == nil:
		return p, true
	case errors.Is(err, inbox.ErrUnauthorized):
		c.srv.authFailures.Add(1)
		c.shut(closeUnauthorized, "unauthorized", false)
	default:
		c.srv.log.Error("ws: authenticate", "err", err)
		c.shut(websocket.StatusInternalError, "internal error", false)
	}
	return p, false
}

// replay sends welcome and every event after since, then starts the live
// subscription at the last seq sent. The subscription was made before the
// first read of the log, so every event committed later is queued in it, and
// Start drops the ones the replay already covered: no gap, no duplicate.
func (c *conn) replay(p inbox.Principal, since uint64) bool {
	page := c.srv.opts.ReplayPage
	events, head, reset, err := c.events(p, since, page)
	if err != nil {
		return c.internal("replay", err)
	}
	if since > head {
		reset = true // the client is ahead of this log: its state is not ours
	}
	agent := p.Agent
	agent.Online = true
	agent.Keys = nil
	if err := c.writeJSON(welcomeFrame{Type: "welcome", Head: head, Agent: agent}); err != nil {
		return false
	}
	last := since
	for !reset {
		for _, ev := range events {
			if ev.Seq <= last {
				continue
			}
			data, err := hub.EncodeEvent(ev)
			if err != nil {
				return c.internal("replay", err)
			}
			if err := c.write(data); err != nil {
				return false
			}
			last = ev.Seq
		}
		if len(events) == 0 || last >= head {
			break
		}
		if events, head, reset, err = c.events(p, last, page); err != nil {
			return c.internal("replay", err)
		}
	}
	if reset {
		if err := c.writeJSON(resetFrame{Type: "reset", Head: head}); err != nil {
			return false
		}
		last = head
	}
	c.sub.Start(last)
	return true
}

func (c *conn) events(p inbox.Principal, since uint64, limit int) ([]inbox.Event, uint64, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.opts.CallTimeout)
	defer cancel()
	events, head, reset, err := c.srv.opts.Backend.Events(ctx, p, since, limit)
	if err != nil {
		return nil, 0, false, fmt.Errorf("events since %d: %w", since, err)
	}
	return events, head, reset, nil
}

func (c *conn) internal(what string, err error) bool {
	c.srv.log.Error("ws: "+what, "agent", c.agentID, "err", err)
	c.shut(websocket.StatusInternalError, "internal error", false)
	return false
}

// readLoop handles client frames until the socket ends. Reads use a context
// without a deadline: a deadline would cost a timer per read, and liveness
// is the pinger's job.
func (c *conn) readLoop() {
	c.frameTokens = float64(c.srv.opts.FrameBurst)
	c.frameAt = time.Now().UnixNano()
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.srv.countReadError(err)
			return
		}
		if !c.allowFrame() {
			c.srv.floodCloses.Add(1)
			c.shut(websocket.StatusPolicyViolation, "too many frames", false)
			return
		}
		if typ != websocket.MessageText {
			c.shut(websocket.StatusUnsupportedData, "text frames only", false)
			return
		}
		f, err := decodeClientFrame(data)
		if err != nil {
			c.shut(websocket.StatusInvalidFramePayloadData, "malformed JSON", false)
			return
		}
		switch f.Type {
		case "typing":
			c.typing(f.ConversationID)
		default:
			// Unknown types are ignored so clients can be newer than us.
		}
	}
}

// allowFrame takes a token from the socket's frame bucket.
func (c *conn) allowFrame() bool {
	now := time.Now().UnixNano()
	burst := float64(c.srv.opts.FrameBurst)
	c.frameTokens += float64(now-c.frameAt) / float64(time.Second) * c.srv.opts.FrameRate
	if c.frameTokens > burst {
		c.frameTokens = burst
	}
	c.frameAt = now
	if c.frameTokens < 1 {
		return false
	}
	c.frameTokens--
	return true
}

func (c *conn) typing(conversationID string) {
	if conversationID == "" || len(conversationID) > maxIDLength {
		return
	}
	now := time.Now().UnixNano()
	if now-c.lastTyping < int64(c.srv.opts.TypingInterval) {
		return
	}
	c.lastTyping = now
	c.sub.Typing(conversationID)
}

// Write implements hub.Sink: the hub's worker pool sends live frames here.
func (c *conn) Write(ctx context.Context, frames [][]byte) (err error) {
	if len(frames) > 1 && c.cork != nil {
		c.cork.cork()
		defer func() {
			if uerr := c.cork.uncork(c.srv.opts.WriteTimeout); uerr != nil && err == nil && !c.closing.Load() {
				err = fmt.Errorf("write frames: %w", uerr)
			}
		}()
	}
	for _, f := range frames {
		if c.closing.Load() {
			return nil // the socket is on its way out; its reader cleans up
		}
		if err := c.ws.Write(ctx, websocket.MessageText, f); err != nil {
			if c.closing.Load() {
				return nil // closed under us; not the socket's fault
			}
			return fmt.Errorf("write frame: %w", err)
		}
		c.srv.framesSent.Add(1)
	}
	return nil
}

// Close implements hub.Sink. The close handshake can take seconds, so it
// runs in its own goroutine; the reader waits for it before returning.
func (c *conn) Close(code int, reason string) {
	c.shut(websocket.StatusCode(code), reason, true)
}

func (c *conn) write(data []byte) error {
	if c.closing.Load() {
		return net.ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.opts.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	c.srv.framesSent.Add(1)
	return nil
}

func (c *conn) writeJSON(v any) error {
	data, err := encodeJSON(v)
	if err != nil {
		return c.internalErr(err)
	}
	return c.write(data)
}

func (c *conn) internalErr(err error) error {
	c.internal("encode", err)
	return err
}

// shut starts closing the socket with code; only the first call counts.
// code 0 means cut the connection without a handshake.
func (c *conn) shut(code websocket.StatusCode, reason string, async bool) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	if async {
		go c.finish(code, reason)
		return
	}
	c.finish(code, reason)
}

func (c *conn) finish(code websocket.StatusCode, reason string) {
	defer close(c.done)
	var err error
	if code == 0 {
		err = c.ws.CloseNow()
	} else {
		err = c.ws.Close(code, reason)
	}
	if err != nil {
		// Not agentID: a close can start while the handshake still runs.
		c.srv.log.Debug("ws: close", "remote", c.nc.RemoteAddr().String(), "code", int(code), "err", err)
	}
}

// abort cuts a connection that stopped answering pings.
func (c *conn) abort() { c.shut(0, "", false) }

// wait ends the session: close normally unless a close is already under
// way, and return only when the close handshake is over, so the caller may
// close the TCP connection.
func (c *conn) wait() {
	c.live.Store(false)
	c.shut(websocket.StatusNormalClosure, "", false)
	<-c.done
}
