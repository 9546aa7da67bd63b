package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// runQueue is an unbounded FIFO of subscriptions with work. It cannot grow
// past the number of subscriptions: one is queued at most once (scheduled).
type runQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []*Subscription
	closed bool
}

func (q *runQueue) push(s *Subscription) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, s)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *runQueue) pop() (*Subscription, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	s := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // let a burst's backing array go
	}
	return s, true
}

func (q *runQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.items = nil
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (h *Hub) worker() {
	defer h.workers.Done()
	var buf [][]byte
	for {
		s, ok := h.runq.pop()
		if !ok {
			return
		}
		buf = h.process(s, buf)
	}
}

// maxKeptFrames bounds the frame list a worker keeps between batches.
const maxKeptFrames = 1024

// errGap means the store could not supply the events of a seq jump.
var errGap = errors.New("gap in the event stream could not be filled")

// process writes everything queued for s so far, then releases it (or puts
// it back at the end of the run queue if more arrived meanwhile, so one busy
// socket cannot starve the others). buf is the worker's reusable frame list.
func (h *Hub) process(s *Subscription, buf [][]byte) [][]byte {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		h.remove(s)
		return buf
	}
	batch := s.queue
	s.queue = nil
	s.queued = 0
	written := s.written
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), h.opts.WriteTimeout)
	frames, written, err := h.collect(ctx, s, batch, written, buf[:0])
	if len(frames) > 0 && (err == nil || errors.Is(err, errGap)) {
		// Frames before an unfillable gap are still good to send.
		if werr := s.sink.Write(ctx, frames); werr != nil {
			h.writeErrors.Add(1)
			err = fmt.Errorf("write to socket: %w", werr)
		}
	}
	cancel()
	clear(frames) // do not pin event bytes in the worker's buffer
	if cap(frames) > maxKeptFrames {
		frames = nil // a rare huge batch (a long gap) should not stay allocated
	}

	if err != nil {
		// A write that fails or times out is a consumer that cannot keep
		// up; a gap the store cannot fill is ours.
		code, level := CloseSlow, slog.LevelDebug
		if errors.Is(err, errGap) || errors.Is(err, errFill) {
			code, level = CloseInternal, slog.LevelWarn
		}
		h.log.Log(context.Background(), level, "hub: closing subscription", "tenant", s.t.id, "agent", s.session.AgentID, "err", err)
		s.mu.Lock()
		s.closed = true
		s.queue = nil
		s.mu.Unlock()
		s.sink.Close(code, "stream error")
		h.remove(s)
		return frames
	}

	s.mu.Lock()
	s.written = written
	switch {
	case s.closed:
		s.mu.Unlock()
		h.remove(s)
		return frames
	case len(s.queue) > 0:
		s.mu.Unlock()
		h.runq.push(s)
	default:
		s.scheduled = false
		s.mu.Unlock()
	}
	return frames
}

var errFill = errors.New("fill from store")

// collect turns a batch into frames to write, skipping events at or below
// written and filling any seq jump from the store first.
func (h *Hub) collect(ctx context.Context, s *Subscription, batch []item, written uint64, frames [][]byte) ([][]byte, uint64, error) {
	for _, it := range batch {
		if it.resync {
			var err error
			frames, written, err = h.catchUp(ctx, s, written, frames)
			if err != nil {
				return frames, written, err
			}
			continue
		}
		if it.events == nil {
			frames = append(frames, it.frame)
			continue
		}
		for _, f := range it.events {
			if f.Seq <= written {
				continue
			}
			if f.Seq > written+1 {
				var err error
				frames, written, err = h.fill(ctx, s, written, f.Seq-1, frames)
				if err != nil {
					return frames, written, err
				}
			}
			frames = append(frames, f.Data)
			written = f.Seq
		}
	}
	return frames, written, nil
}

// fill appends the frames of events (written, upTo] loaded from the store.
func (h *Hub) fill(ctx context.Context, s *Subscription, written, upTo uint64, frames [][]byte) ([][]byte, uint64, error) {
	if h.opts.Fill == nil {
		return frames, written, fmt.Errorf("seq %d after %d with no Fill: %w", upTo+1, written, errGap)
	}
	h.gapFills.Add(1)
	for written < upTo {
		events, err := h.opts.Fill(ctx, s.t.id, written)
		if err != nil {
			return frames, written, fmt.Errorf("%w: tenant %s since %d: %w", errFill, s.t.id, written, err)
		}
		progressed := false
		for _, ev := range events {
			if ev.Seq <= written {
				continue
			}
			if ev.Seq > upTo {
				break
			}
			if ev.Seq != written+1 {
				return frames, written, fmt.Errorf("store has seq %d after %d: %w", ev.Seq, written, errGap)
			}
			data, err := EncodeEvent(ev)
			if err != nil {
				return frames, written, fmt.Errorf("%w: %w", errFill, err)
			}
			frames = append(frames, data)
			written = ev.Seq
			progressed = true
		}
		if !progressed {
			return frames, written, fmt.Errorf("store returned nothing after %d (want up to %d): %w", written, upTo, errGap)
		}
	}
	return frames, written, nil
}

// catchUp appends the frames of every event after written that the store
// has, whatever the broker delivered: after a possible loss, the last
// events may be missing with no later event to reveal the jump.
func (h *Hub) catchUp(ctx context.Context, s *Subscription, written uint64, frames [][]byte) ([][]byte, uint64, error) {
	if h.opts.Fill == nil {
		return frames, written, nil
	}
	h.catchUps.Add(1)
	for {
		events, err := h.opts.Fill(ctx, s.t.id, written)
		if err != nil {
			return frames, written, fmt.Errorf("%w: catch up tenant %s since %d: %w", errFill, s.t.id, written, err)
		}
		progressed := false
		for _, ev := range events {
			if ev.Seq <= written {
				continue
			}
			if ev.Seq != written+1 {
				return frames, written, fmt.Errorf("store has seq %d after %d: %w", ev.Seq, written, errGap)
			}
			data, err := EncodeEvent(ev)
			if err != nil {
				return frames, written, fmt.Errorf("%w: %w", errFill, err)
			}
			frames = append(frames, data)
			written = ev.Seq
			progressed = true
		}
		if !progressed {
			return frames, written, nil
		}
		// Events committed meanwhile are queued too; those the store
		// has just supplied must not count against the queue's bound,
		// or a catch-up during a burst would close the socket as slow.
		s.caughtUp(written)
	}
}
