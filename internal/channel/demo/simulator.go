// Package demo is a channel without a provider: simulated customers write
// to every demo channel, and replies sent to them are "delivered", "read"
// and sometimes answered. It lets people try OneBox (`onebox serve --demo`)
// without a WhatsApp, TikTok or SMS account, through the same paths real
// channels use (Service.Receive, the outbox, Service.ReportStatus).
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/inbox"
)

// Defaults for SimulatorConfig's zero values: a message every 4–8 s keeps
// the inbox lively without burying a person trying the app.
const (
	DefaultInterval = 4 * time.Second
	DefaultJitter   = 4 * time.Second
)

// SimulatorConfig wires a Simulator. Service is required.
type SimulatorConfig struct {
	Service *inbox.Service
	// Interval is the least time between two rounds; each round waits
	// Interval plus a random part of Jitter (negative Jitter: none).
	Interval time.Duration
	Jitter   time.Duration
	// Rand drives every choice (who writes, what, when); a seeded one makes
	// a run repeatable. Nil seeds from the runtime.
	Rand   *rand.Rand
	Logger *slog.Logger
}

// Simulator makes simulated customers write to every demo channel.
type Simulator struct {
	svc      *inbox.Service
	interval time.Duration
	jitter   time.Duration
	rng      *rand.Rand
	log      *slog.Logger
	// threads is each customer's current topic per channel; only Run's
	// goroutine touches it.
	threads map[string]map[string]*thread
}

// thread is where one customer is in one topic.
type thread struct {
	topic int
	next  int
	order string
}

// NewSimulator fills in cfg's defaults.
func NewSimulator(cfg SimulatorConfig) *Simulator {
	s := &Simulator{
		svc:      cfg.Service,
		interval: cfg.Interval,
		jitter:   cfg.Jitter,
		rng:      cfg.Rand,
		log:      cfg.Logger,
		threads:  map[string]map[string]*thread{},
	}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.jitter == 0 {
		s.jitter = DefaultJitter
	}
	if s.rng == nil {
		s.rng = newRand()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) }

// Run writes one message per demo channel right away (so a fresh demo is
// not empty) and then every Interval+jitter, until ctx ends. Failures are
// logged, not returned: a demo that hiccups should keep going.
func (s *Simulator) Run(ctx context.Context) error {
	if s.svc == nil {
		return fmt.Errorf("demo simulator: a service is required")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if err := s.step(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("demo: simulating customers", "err", err)
		}
		timer.Reset(s.wait())
	}
}

func (s *Simulator) wait() time.Duration {
	d := s.interval
	if s.jitter > 0 {
		d += time.Duration(s.rng.Int64N(int64(s.jitter)))
	}
	return d
}

// step makes one customer write on each demo channel.
func (s *Simulator) step(ctx context.Context) error {
	channels, err := s.svc.ChannelsOfType(ctx, inbox.ChannelDemo)
	if err != nil {
		return fmt.Errorf("list demo channels: %w", err)
	}
	seen := make(map[string]bool, len(channels))
	var firstErr error
	for _, ch := range channels {
		seen[ch.ID] = true
		c, text := s.next(ch.ID)
		_, err := s.svc.Receive(ctx, ch.ID, []inbox.Inbound{{
			ExternalID:    "demo-in-" + uuid.NewString(),
			ContactHandle: c.Handle,
			ContactName:   c.Name,
			Kind:          inbox.KindText,
			Text:          text,
		}})
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("receive on demo channel %s: %w", ch.ID, err)
		}
	}
	for id := range s.threads {
		if !seen[id] {
			delete(s.threads, id) // channel deleted: forget its threads
		}
	}
	return firstErr
}

// next picks who writes on a channel and what: the next line of their
// current topic, or the opening of a new one.
func (s *Simulator) next(channelID string) (Customer, string) {
	byHandle := s.threads[channelID]
	if byHandle == nil {
		byHandle = map[string]*thread{}
		s.threads[channelID] = byHandle
	}
	c := customers[s.rng.IntN(len(customers))]
	th := byHandle[c.Handle]
	if th == nil || th.next >= len(topics[th.topic]) {
		prev := -1
		if th != nil {
			prev = th.topic
		}
		t := s.rng.IntN(len(topics))
		if t == prev {
			t = (t + 1) % len(topics)
		}
		th = &thread{topic: t, order: "#" + strconv.Itoa(10000+s.rng.IntN(90000))}
		byHandle[c.Handle] = th
	}
	line := strings.ReplaceAll(topics[th.topic][th.next], "{order}", th.order)
	th.next++
	return c, line
}
