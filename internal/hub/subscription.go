package hub

import (
	"context"
	"sync"

	"github.com/onebox/onebox/internal/inbox"
)

// Sink is one live socket as the hub sees it.
type Sink interface {
	// Write sends frames, in order, one message each. The hub calls it from
	// one pool worker at a time per sink, with a deadline in ctx.
	Write(ctx context.Context, frames [][]byte) error
	// Close closes the socket with a contract close code. It must return
	// promptly: it is called from publish paths that may not block.
	Close(code int, reason string)
}

// item is one queued delivery: a shared run of event frames, one
// ephemeral frame (typing, presence) that has no seq, or a catch-up.
type item struct {
	events []Frame
	frame  []byte
	resync bool // catch up from the store: events may have been lost
}

// Subscription is one socket's place in its tenant's fan-out.
type Subscription struct {
	hub     *Hub
	t       *tenant
	session inbox.Session
	sink    Sink

	mu         sync.Mutex
	queue      []item
	queued     int    // frames in queue
	lastQueued uint64 // highest event seq queued (or replayed): drop anything <= it
	written    uint64 // highest event seq written; only the scheduled worker moves it
	started    bool
	scheduled  bool // in the run queue or held by a worker
	closed     bool
}

// Start ends the paused phase: events with seq <= last (already replayed by
// the caller) are dropped, later ones are written in order, and any seq jump
// after last is filled from the store first.
func (s *Subscription) Start(last uint64) {
	s.mu.Lock()
	if s.closed || s.started {
		s.mu.Unlock()
		return
	}
	s.started = true
	s.written = last
	if s.lastQueued < last {
		s.lastQueued = last
	}
	run := len(s.queue) > 0 && !s.scheduled
	if run {
		s.scheduled = true
	}
	s.mu.Unlock()
	if run {
		s.hub.runq.push(s)
	}
}

// Typing relays a typing indicator from this subscription's agent.
func (s *Subscription) Typing(conversationID string) {
	s.hub.Typing(s.t.id, conversationID, s.session.AgentID)
}

// Close leaves the fan-out; the socket's owner calls it when the socket
// ends. It does not close the sink. Safe to call more than once.
func (s *Subscription) Close() {
	s.mu.Lock()
	s.closed = true
	s.queue = nil
	s.queued = 0
	s.mu.Unlock()
	s.hub.remove(s)
}

// enqueue adds it to the queue and schedules the subscription if needed. A
// full queue closes the socket with CloseSlow instead of blocking. Called
// with the tenant's read lock held.
func (s *Subscription) enqueue(it item) {
	n := 1
	if it.events != nil {
		// Drop frames already queued or replayed; the slice is shared, so
		// re-slice rather than copy.
		i := 0
		s.mu.Lock()
		for i < len(it.events) && it.events[i].Seq <= s.lastQueued {
			i++
		}
		if i == len(it.events) {
			s.mu.Unlock()
			return
		}
		it.events = it.events[i:]
		n = len(it.events)
	} else {
		s.mu.Lock()
	}
	if s.closed {
		s.mu.Unlock()
		return
	}
	// An empty queue takes any single message, so a large commit batch
	// cannot by itself mark an idle socket slow.
	if len(s.queue) > 0 && s.queued+n > s.hub.opts.QueueSize {
		s.mu.Unlock()
		s.hub.slowCloses.Add(1)
		s.kill(CloseSlow, "slow consumer")
		return
	}
	s.queue = append(s.queue, it)
	s.queued += n
	if it.events != nil {
		s.lastQueued = it.events[len(it.events)-1].Seq
	}
	run := s.started && !s.scheduled
	if run {
		s.scheduled = true
	}
	s.mu.Unlock()
	if run {
		s.hub.runq.push(s)
	}
}

// kill closes the sink with code and hands the subscription to a worker for
// removal: removal takes hub locks that the caller (a broker callback) may
// not take. It is queued even if a worker holds it (stuck writing to this
// very socket), so another worker takes it out of the tenant at once.
// It reports whether it closed the sink (false: it was closed already).
func (s *Subscription) kill(code int, reason string) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	s.queue = nil
	s.queued = 0
	s.scheduled = true
	s.mu.Unlock()
	s.sink.Close(code, reason)
	s.hub.runq.push(s)
	return true
}

// caughtUp drops from the queue the events up to seq, which a catch-up
// has read from the store for the batch being written, and makes enqueue
// drop them from now on. Called by the worker holding s.
func (s *Subscription) caughtUp(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastQueued < seq {
		s.lastQueued = seq
	}
	kept, n := s.queue[:0], 0
	for _, it := range s.queue {
		if it.events != nil {
			i := 0
			for i < len(it.events) && it.events[i].Seq <= seq {
				i++
			}
			if i == len(it.events) {
				continue
			}
			it.events = it.events[i:] // shared: re-slice, never modify
			n += len(it.events)
		} else {
			n++
		}
		kept = append(kept, it)
	}
	clear(s.queue[len(kept):])
	s.queue, s.queued = kept, n
}
