package channel_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// inner counts sends; block, when set, holds each send until closed.
type inner struct {
	mu      sync.Mutex
	sends   int
	block   chan struct{}
	started chan struct{}
}

func (s *inner) Send(ctx context.Context, g inbox.Outgoing) (string, error) {
	s.mu.Lock()
	s.sends++
	s.mu.Unlock()
	if s.started != nil {
		s.started <- struct{}{}
	}
	if s.block != nil {
		<-s.block
	}
	return "ext-" + g.Message.ID, nil
}

func (s *inner) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sends
}

// claims remembers which items were marked, as the store would.
type claims struct {
	mu     sync.Mutex
	marked map[string]bool
	err    error
}

func (c *claims) BeginSend(ctx context.Context, o inbox.OutboxItem) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false, c.err
	}
	if c.marked[o.MessageID] {
		return true, nil
	}
	c.marked[o.MessageID] = true
	return false, nil
}

func out(channelID, msgID string) inbox.Outgoing {
	return inbox.Outgoing{Item: inbox.OutboxItem{MessageID: msgID}, Channel: inbox.Channel{ID: channelID, Type: inbox.ChannelWhatsApp},
		Message: inbox.Message{ID: msgID}}
}

func deferral(t *testing.T, err error) time.Duration {
	t.Helper()
	var se *inbox.SendError
	if !errors.As(err, &se) || !se.Deferred || !se.Temporary {
		t.Fatalf("got %v, want a deferral", err)
	}
	return se.RetryAfter
}

func TestRateLimitDefersPerChannel(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	in := &inner{}
	g := channel.NewGuard(in, channel.GuardConfig{Limits: channel.Limits{PerSecond: 2, Burst: 2}, MaxWait: time.Millisecond, Now: c.Now})
	ctx := context.Background()
	for i, id := range []string{"a", "b"} {
		if _, err := g.Send(ctx, out("ch1", id)); err != nil {
			t.Fatalf("send %d within the burst: %v", i, err)
		}
	}
	wait := deferral(t, func() error { _, err := g.Send(ctx, out("ch1", "c")); return err }())
	if wait < 400*time.Millisecond || wait > 500*time.Millisecond {
		t.Errorf("retry after %v, want about 500ms at 2/s", wait)
	}
	// Another channel has its own budget.
	if _, err := g.Send(ctx, out("ch2", "d")); err != nil {
		t.Fatalf("another channel: %v", err)
	}
	c.Advance(wait)
	if _, err := g.Send(ctx, out("ch1", "c")); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	if in.count() != 4 {
		t.Fatalf("%d sends reached the provider, want 4", in.count())
	}
}

func TestConcurrencyLimit(t *testing.T) {
	in := &inner{block: make(chan struct{}), started: make(chan struct{}, 1)}
	g := channel.NewGuard(in, channel.GuardConfig{Limits: channel.Limits{Concurrency: 1}, MaxWait: time.Millisecond})
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { _, err := g.Send(ctx, out("ch1", "a")); done <- err }()
	<-in.started
	deferral(t, func() error { _, err := g.Send(ctx, out("ch1", "b")); return err }())
	in.started = nil
	close(in.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := g.Send(ctx, out("ch1", "b")); err != nil {
		t.Fatalf("after the first finished: %v", err)
	}
}

func TestUncertainSends(t *testing.T) {
	ctx := context.Background()
	in := &inner{}
	cl := &claims{marked: map[string]bool{"crashed": true}}
	g := channel.NewGuard(in, channel.GuardConfig{Claims: cl})
	_, err := g.Send(ctx, out("ch", "crashed"))
	var se *inbox.SendError
	if !errors.As(err, &se) || se.Code != channel.CodeSendUncertain || se.Temporary {
		t.Fatalf("uncertain send: %v", err)
	}
	if in.count() != 0 {
		t.Fatal("an uncertain send reached the provider")
	}
	// A provider that deduplicates gets it again.
	idem := channel.NewGuard(in, channel.GuardConfig{Claims: cl, Idempotent: true})
	if _, err := idem.Send(ctx, out("ch", "crashed")); err != nil || in.count() != 1 {
		t.Fatalf("idempotent provider: %v, %d sends", err, in.count())
	}
	// A store that cannot record the mark defers the send.
	cl.err = errors.New("disk full")
	deferral(t, func() error { _, err := g.Send(ctx, out("ch", "new")); return err }())
	if in.count() != 1 {
		t.Fatal("a send went out without its mark")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		"-3":                            0,
		"soon":                          0,
		"Thu, 01 Jan 2026 12:00:30 GMT": 30 * time.Second,
		"99999999":                      24 * time.Hour,
	} {
		if got := channel.RetryAfter(h, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestEqualHex(t *testing.T) {
	mac := channel.HMACSHA256("k", []byte("body"))
	good := "c6d811ef3aeb02437cd423f1abe13209041864630bdc4e2c04def5c7b0031a23"
	if len(mac) != 32 || !channel.EqualHex(good, mac) || !channel.EqualHex("C6D811EF3AEB02437CD423F1ABE13209041864630BDC4E2C04DEF5C7B0031A23", mac) {
		t.Fatalf("the right MAC does not compare equal")
	}
	for _, bad := range []string{"", good[:62], good + "00", "g" + good[1:]} {
		if channel.EqualHex(bad, mac) {
			t.Errorf("EqualHex(%q) = true", bad)
		}
	}
}
