package ws

import (
	"context"
	"time"
)

// pingSlots spreads pings over the interval: every PingInterval/pingSlots
// the pinger pings one slot's connections, so 10k sockets do not all get
// pinged in the same instant.
const pingSlots = 8

// pinger is the one goroutine that decides when sockets are pinged. A ping
// waits for its pong, so each runs in a short-lived goroutine bounded by
// pingSem; between pings an idle socket has no goroutine but its reader.
func (s *Server) pinger() {
	defer close(s.pingDone)
	t := time.NewTicker(s.opts.PingInterval / pingSlots)
	defer t.Stop()
	var slot uint8
	var due []*conn
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		slot = (slot + 1) % pingSlots
		s.mu.Lock()
		for c, sl := range s.conns {
			if sl == slot && c.live.Load() {
				due = append(due, c)
			}
		}
		s.mu.Unlock()
		for i, c := range due {
			select {
			case s.pingSem <- struct{}{}:
			case <-s.stop:
				clear(due)
				return
			}
			due[i] = nil
			s.pinging.Add(1)
			go s.ping(c)
		}
		due = due[:0]
	}
}

func (s *Server) ping(c *conn) {
	defer func() {
		<-s.pingSem
		s.pinging.Done()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.PingTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil && !c.closing.Load() {
		s.pingFailures.Add(1)
		s.log.Debug("ws: ping failed", "agent", c.agentID, "err", err)
		c.abort()
	}
}
