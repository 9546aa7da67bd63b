package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

const wait = 5 * time.Second

// sink records what the hub writes. When gate is set, Write blocks until
// the gate is closed (or the write deadline passes): a socket that cannot
// keep up.
type sink struct {
	mu      sync.Mutex
	frames  [][]byte
	closes  []int
	gate    chan struct{}
	changed chan struct{}
}

func newSink() *sink { return &sink{changed: make(chan struct{}, 1)} }

func (s *sink) Write(ctx context.Context, frames [][]byte) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.frames = append(s.frames, frames...)
	s.mu.Unlock()
	s.notify()
	return nil
}

func (s *sink) Close(code int, _ string) {
	s.mu.Lock()
	s.closes = append(s.closes, code)
	s.mu.Unlock()
	s.notify()
}

func (s *sink) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond (called under the sink's lock) holds.
func (s *sink) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-timer.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (s *sink) waitFrames(t *testing.T, n int) [][]byte {
	t.Helper()
	s.waitFor(t, fmt.Sprintf("%d frames", n), func() bool { return len(s.frames) >= n })
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.frames...)
}

// waitEvents waits for n event frames and returns all frames so far.
func (s *sink) waitEvents(t *testing.T, n int) [][]byte {
	t.Helper()
	s.waitFor(t, fmt.Sprintf("%d events", n), func() bool { return len(seqs(t, s.frames)) >= n })
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.frames...)
}

func (s *sink) waitClose(t *testing.T) int {
	t.Helper()
	s.waitFor(t, "a close", func() bool { return len(s.closes) > 0 })
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closes[0]
}

type frame struct {
	Type           string       `json:"type"`
	Event          *inbox.Event `json:"event"`
	ConversationID string       `json:"conversation_id"`
	AgentID        string       `json:"agent_id"`
	Online         bool         `json:"online"`
}

func decode(t *testing.T, b []byte) frame {
	t.Helper()
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return f
}

// seqs returns the seqs of the event frames among frames.
func seqs(t *testing.T, frames [][]byte) []uint64 {
	t.Helper()
	var out []uint64
	for _, b := range frames {
		if f := decode(t, b); f.Type == "event" {
			out = append(out, f.Event.Seq)
		}
	}
	return out
}

func events(tenant string, from, to uint64) []inbox.Event {
	var evs []inbox.Event
	for seq := from; seq <= to; seq++ {
		evs = append(evs, inbox.Event{Seq: seq, Type: inbox.EventMessageCreated, TenantID: tenant,
			At: time.Unix(int64(seq), 0).UTC(), Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, seq))})
	}
	return evs
}

func session(tenant, agent, key string) inbox.Session {
	return inbox.Session{Hash: "h-" + agent + key, TenantID: tenant, AgentID: agent, KeyID: key}
}

// newHub starts a hub closed at cleanup, and checks no goroutine outlives it.
func newHub(t *testing.T, opts hub.Options) *hub.Hub {
	t.Helper()
	base := runtime.NumGoroutine()
	h := hub.New(opts)
	t.Cleanup(func() {
		h.Close()
		deadline := time.Now().Add(wait)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				t.Errorf("goroutine leak: %d running, %d before the hub", runtime.NumGoroutine(), base)
				return
			}
			time.Sleep(5 * time.Millisecond) // polling the count
		}
	})
	return h
}

func subscribe(t *testing.T, h *hub.Hub, sess inbox.Session, s hub.Sink, last uint64) *hub.Subscription {
	t.Helper()
	sub, err := h.Subscribe(sess.TenantID, sess, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	sub.Start(last)
	return sub
}

func TestPublishEncodesOnceAndSharesBytes(t *testing.T) {
	h := newHub(t, hub.Options{})
	a, b := newSink(), newSink()
	subscribe(t, h, session("T", "a1", "k1"), a, 0)
	subscribe(t, h, session("T", "a2", "k2"), b, 0)

	h.Publish(events("T", 1, 1))
	fa, fb := a.waitEvents(t, 1), b.waitEvents(t, 1)
	ea, eb := fa[len(fa)-1], fb[len(fb)-1]
	if &ea[0] != &eb[0] {
		t.Error("subscribers got different copies of the event frame")
	}
	want, err := hub.EncodeEvent(events("T", 1, 1)[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(ea) != string(want) {
		t.Errorf("frame = %s, want %s", ea, want)
	}
	if f := decode(t, ea); f.Type != "event" || f.Event.Seq != 1 || string(f.Event.Data) != `{"n":1}` {
		t.Errorf("decoded frame = %+v", f)
	}
}

func TestStartDropsReplayedAndDuplicateEvents(t *testing.T) {
	h := newHub(t, hub.Options{})
	s := newSink()
	sub, err := h.Subscribe("T", session("T", "a1", "k1"), s)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	h.Publish(events("T", 1, 3)) // queued while "replaying"
	sub.Start(2)                 // the replay covered 1..2
	h.Publish(events("T", 3, 4)) // 3 again: a duplicate
	h.Publish(events("T", 5, 5))
	got := seqs(t, s.waitEvents(t, 3))
	if fmt.Sprint(got) != "[3 4 5]" {
		t.Fatalf("seqs = %v, want [3 4 5]", got)
	}
}

func TestSlowConsumerClosedOthersUnaffected(t *testing.T) {
	h := newHub(t, hub.Options{QueueSize: 4, Workers: 2})
	slow, fast := newSink(), newSink()
	slow.gate = make(chan struct{}) // its first write never finishes
	defer close(slow.gate)
	subscribe(t, h, session("T", "a1", "k1"), slow, 0)
	subscribe(t, h, session("T", "a2", "k2"), fast, 0)

	// One event at a time, each written to the fast socket before the
	// next, so only the slow socket's queue grows.
	for seq := uint64(1); seq <= 20; seq++ {
		h.Publish(events("T", seq, seq))
		fast.waitEvents(t, int(seq))
	}
	if code := slow.waitClose(t); code != hub.CloseSlow {
		t.Fatalf("slow sink closed with %d, want %d", code, hub.CloseSlow)
	}
	// Removal is immediate even though a worker is still stuck writing to
	// the slow socket: the others see it go offline.
	fast.waitFor(t, "a1 offline", func() bool {
		for _, b := range fast.frames {
			if f := decode(t, b); f.Type == "presence" && f.AgentID == "a1" && !f.Online {
				return true
			}
		}
		return false
	})
	if st := h.Stats(); st.SlowCloses != 1 || st.Subscribers != 1 {
		t.Errorf("stats = %+v, want 1 slow close and 1 subscriber left", st)
	}
	if on := h.Online("T"); len(on) != 1 || on[0] != "a2" {
		t.Errorf("Online = %v, want [a2]", on)
	}
}

func TestGapFilledFromStore(t *testing.T) {
	log := events("T", 1, 5)
	var fills []uint64
	var mu sync.Mutex
	fill := func(_ context.Context, tenant string, since uint64) ([]inbox.Event, error) {
		mu.Lock()
		fills = append(fills, since)
		mu.Unlock()
		if tenant != "T" {
			return nil, fmt.Errorf("fill for tenant %s", tenant)
		}
		return log[since:], nil
	}
	h := newHub(t, hub.Options{Fill: fill})
	s := newSink()
	subscribe(t, h, session("T", "a1", "k1"), s, 0)
	h.Publish(log[0:1])
	h.Publish(log[3:5]) // 2 and 3 never published here
	got := seqs(t, s.waitEvents(t, 5))
	if fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("seqs = %v, want [1 2 3 4 5]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(fills) != "[1]" {
		t.Errorf("fills since = %v, want [1]", fills)
	}
}

func TestUnfillableGapCloses(t *testing.T) {
	h := newHub(t, hub.Options{}) // no Fill
	s := newSink()
	subscribe(t, h, session("T", "a1", "k1"), s, 0)
	h.Publish(events("T", 1, 1))
	h.Publish(events("T", 3, 3))
	if code := s.waitClose(t); code != hub.CloseInternal {
		t.Fatalf("closed with %d, want %d", code, hub.CloseInternal)
	}
	if got := seqs(t, s.waitFrames(t, 2)); fmt.Sprint(got) != "[1]" {
		t.Errorf("seqs = %v, want [1] and nothing after the gap", got)
	}
}

func TestTypingGoesToOtherAgentsOfTheTenantOnly(t *testing.T) {
	h := newHub(t, hub.Options{})
	a1, a1b, a2, b1 := newSink(), newSink(), newSink(), newSink()
	sub := subscribe(t, h, session("A", "a1", "k1"), a1, 0)
	subscribe(t, h, session("A", "a1", "k2"), a1b, 0)
	subscribe(t, h, session("A", "a2", "k3"), a2, 0)
	subscribe(t, h, session("B", "b1", "k4"), b1, 0)

	sub.Typing("conv-1")
	h.Publish(events("A", 1, 1))
	h.Publish(events("B", 1, 1))
	for name, s := range map[string]*sink{"a1": a1, "a1b": a1b, "a2": a2, "b1": b1} {
		s.waitFor(t, name+" event", func() bool {
			return len(s.frames) > 0 && decode(t, s.frames[len(s.frames)-1]).Type == "event"
		})
		s.mu.Lock()
		var typing []frame
		for _, b := range s.frames {
			if f := decode(t, b); f.Type == "typing" {
				typing = append(typing, f)
			}
		}
		s.mu.Unlock()
		want := 0
		if name == "a2" {
			want = 1
		}
		if len(typing) != want {
			t.Errorf("%s got %d typing frames, want %d", name, len(typing), want)
		}
		if want == 1 && (typing[0].ConversationID != "conv-1" || typing[0].AgentID != "a1") {
			t.Errorf("typing frame = %+v", typing[0])
		}
	}
}

func TestPresenceAndOnline(t *testing.T) {
	h := newHub(t, hub.Options{})
	watcher := newSink()
	subscribe(t, h, session("A", "w", "kw"), watcher, 0)
	s1, s2 := newSink(), newSink()
	sub1 := subscribe(t, h, session("A", "a1", "k1"), s1, 0)
	sub2 := subscribe(t, h, session("A", "a1", "k2"), s2, 0) // second socket: no presence
	if on := h.Online("A"); fmt.Sprint(on) != "[a1 w]" {
		t.Errorf("Online = %v, want [a1 w]", on)
	}
	if on := h.Online("B"); len(on) != 0 {
		t.Errorf("Online(B) = %v, want none", on)
	}
	sub1.Close()
	sub2.Close()
	frames := watcher.waitFrames(t, 3)
	var got []string
	for _, b := range frames {
		f := decode(t, b)
		got = append(got, fmt.Sprintf("%s:%v", f.AgentID, f.Online))
	}
	if fmt.Sprint(got) != "[w:true a1:true a1:false]" {
		t.Errorf("presence = %v", got)
	}
	if on := h.Online("A"); fmt.Sprint(on) != "[w]" {
		t.Errorf("Online = %v, want [w]", on)
	}
}

func TestDisconnectMatches(t *testing.T) {
	h := newHub(t, hub.Options{})
	k1a, k1b, k2, other := newSink(), newSink(), newSink(), newSink()
	subscribe(t, h, session("A", "a1", "k1"), k1a, 0)
	subscribe(t, h, session("A", "a2", "k1"), k1b, 0) // (same key id, another agent: still matched)
	subscribe(t, h, session("A", "a1", "k2"), k2, 0)
	subscribe(t, h, session("B", "b1", "k1"), other, 0) // same key id in another tenant

	h.Disconnect("A", inbox.Match{})            // zero match: nothing
	h.Disconnect("A", inbox.Match{KeyID: "k1"}) // revoke
	for _, s := range []*sink{k1a, k1b} {
		if code := s.waitClose(t); code != hub.CloseRevoked {
			t.Fatalf("closed with %d, want %d", code, hub.CloseRevoked)
		}
	}
	h.Publish(events("A", 1, 1))
	h.Publish(events("B", 1, 1))
	for _, s := range []*sink{k2, other} {
		s.waitFor(t, "event", func() bool { return len(s.closes) == 0 && len(seqs(t, s.frames)) == 1 })
	}
	deadline := time.Now().Add(wait)
	for h.Stats().Subscribers != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("subscribers = %d, want 2", h.Stats().Subscribers)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter
	}
}

// recordingBroker is a Broker that logs what passes through it, to show
// every cross-process concern goes through the seam.
type recordingBroker struct {
	*hub.LocalBroker
	mu    sync.Mutex
	kinds []hub.Kind
}

func (b *recordingBroker) Publish(tenant string, m hub.Message) error {
	b.mu.Lock()
	b.kinds = append(b.kinds, m.Kind)
	b.mu.Unlock()
	return b.LocalBroker.Publish(tenant, m)
}

func TestEverythingGoesThroughTheBroker(t *testing.T) {
	b := &recordingBroker{LocalBroker: hub.NewLocalBroker()}
	h := newHub(t, hub.Options{Broker: b})
	s := newSink()
	sub := subscribe(t, h, session("A", "a1", "k1"), s, 0)
	h.Publish(events("A", 1, 2))
	sub.Typing("c")
	h.Disconnect("A", inbox.Match{AgentID: "a1"})
	s.waitClose(t)
	sub.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	want := fmt.Sprint([]hub.Kind{hub.KindPresence, hub.KindEvents, hub.KindTyping, hub.KindDisconnect, hub.KindPresence})
	if got := fmt.Sprint(b.kinds); got != want {
		t.Errorf("broker saw %v, want %v", got, want)
	}
}

func TestPublishNeverBlocksOnAStuckSocket(t *testing.T) {
	h := newHub(t, hub.Options{QueueSize: 1 << 20, WriteTimeout: time.Minute})
	s := newSink()
	s.gate = make(chan struct{})
	defer close(s.gate)
	subscribe(t, h, session("A", "a1", "k1"), s, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := uint64(1); seq <= 10000; seq++ {
			h.Publish(events("A", seq, seq))
		}
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Publish blocked on a socket that does not read")
	}
}

func TestSubscribeAfterCloseFails(t *testing.T) {
	h := hub.New(hub.Options{})
	h.Close()
	if _, err := h.Subscribe("A", session("A", "a1", "k1"), newSink()); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
	h.Close() // idempotent
}
