package demo

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/inbox"
)

var _ inbox.Sender = (*Sender)(nil)

// Delay is a range a simulated wait is drawn from.
type Delay struct{ Min, Max time.Duration }

func (d Delay) pick(rng *rand.Rand) time.Duration {
	if d.Max <= d.Min {
		return d.Min
	}
	return d.Min + time.Duration(rng.Int64N(int64(d.Max-d.Min)))
}

// DefaultReplyChance is how often a customer answers an agent's reply.
const DefaultReplyChance = 0.5

// SenderConfig wires a Sender. Service is required.
type SenderConfig struct {
	Service *inbox.Service
	// Delivered and Read are measured from the send, Reply from the read.
	// Zero values mean lifelike waits: delivered after 1–2 s, read after
	// 3–5 s, an answer 3–8 s after that.
	Delivered, Read, Reply Delay
	// ReplyChance is the probability that the customer answers; zero means
	// DefaultReplyChance and a negative value turns answers off.
	ReplyChance float64
	// Rand drives delays and answers; nil seeds from the runtime.
	Rand   *rand.Rand
	Logger *slog.Logger
}

// Sender "sends" replies to simulated customers. Send only schedules what
// the customer's phone would report; Run carries it out, so nothing
// outlives Run's context.
type Sender struct {
	svc                    *inbox.Service
	delivered, read, reply Delay
	replyChance            float64
	log                    *slog.Logger
	wake                   chan struct{}

	mu       sync.Mutex // guards rng, jobs, seq and replying: Send runs concurrently
	rng      *rand.Rand
	jobs     jobHeap
	seq      uint64
	replying map[string]bool // channel/handle with an answer already scheduled
}

// maxJobs bounds what a Sender holds for a Run that is not running; past
// it, messages stay "sent", which is harmless for a demo.
const maxJobs = 10000

// reportRetry and reportTries cover the moment between Send returning and
// the outbox recording the external id, before which a report would be
// ignored as being about an unknown message.
const (
	reportRetry = 50 * time.Millisecond
	reportTries = 100
)

type jobKind int

const (
	jobDelivered jobKind = iota
	jobRead
	jobReply
)

// job is one step of what a customer's phone does with a message. Steps
// are chained (delivered schedules read, read schedules the answer) rather
// than all scheduled at once, so a delayed step can never overtake the one
// before it.
type job struct {
	at    time.Time
	seq   uint64 // keeps jobs due at the same instant in scheduling order
	kind  jobKind
	tries int

	tenantID, channelID string
	externalID          string
	contact             inbox.Contact
	readAt              time.Time
	answer              bool
	answerIn            time.Duration
}

type jobHeap []*job

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h jobHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)   { *h = append(*h, x.(*job)) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}

// NewSender fills in cfg's defaults.
func NewSender(cfg SenderConfig) *Sender {
	s := &Sender{
		svc:         cfg.Service,
		delivered:   cfg.Delivered,
		read:        cfg.Read,
		reply:       cfg.Reply,
		replyChance: cfg.ReplyChance,
		rng:         cfg.Rand,
		log:         cfg.Logger,
		wake:        make(chan struct{}, 1),
		replying:    map[string]bool{},
	}
	if s.delivered == (Delay{}) {
		s.delivered = Delay{1 * time.Second, 2 * time.Second}
	}
	if s.read == (Delay{}) {
		s.read = Delay{3 * time.Second, 5 * time.Second}
	}
	if s.reply == (Delay{}) {
		s.reply = Delay{3 * time.Second, 8 * time.Second}
	}
	if s.replyChance == 0 {
		s.replyChance = DefaultReplyChance
	}
	if s.rng == nil {
		s.rng = newRand()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Send accepts any message and returns its demo id; the customer's phone
// "reports" delivery and reading later, from Run.
func (s *Sender) Send(ctx context.Context, g inbox.Outgoing) (string, error) {
	if g.Channel.Type != inbox.ChannelDemo {
		return "", &inbox.SendError{Code: "channel_unavailable",
			Message: fmt.Sprintf("the demo sender cannot send on %q channels", g.Channel.Type)}
	}
	ext := "demo-" + uuid.NewString()
	now := time.Now()
	s.mu.Lock()
	if s.jobs.Len() < maxJobs {
		j := job{tenantID: g.Channel.TenantID, channelID: g.Channel.ID, externalID: ext, contact: g.Contact}
		delivered := now.Add(s.delivered.pick(s.rng))
		j.readAt = later(now.Add(s.read.pick(s.rng)), delivered)
		key := answerKey(g.Channel.ID, g.Contact.Handle)
		// One pending answer per customer: three quick replies from an
		// agent should not get three answers.
		if s.replyChance > 0 && !s.replying[key] && s.rng.Float64() < s.replyChance {
			s.replying[key] = true
			j.answer, j.answerIn = true, s.reply.pick(s.rng)
		}
		s.push(j, jobDelivered, delivered)
	}
	s.mu.Unlock()
	s.nudge()
	return ext, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func answerKey(channelID, handle string) string { return channelID + "/" + handle }

// push schedules a copy of base; s.mu must be held.
func (s *Sender) push(base job, kind jobKind, at time.Time) {
	s.seq++
	j := base
	j.kind, j.at, j.seq = kind, at, s.seq
	if kind != base.kind {
		j.tries = 0
	}
	heap.Push(&s.jobs, &j)
}

func (s *Sender) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run carries out scheduled reports and answers until ctx ends. What is
// still scheduled then is dropped: the messages stay "sent".
func (s *Sender) Run(ctx context.Context) error {
	if s.svc == nil {
		return errors.New("demo sender: a service is required")
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, next := s.takeDue(time.Now())
		for _, j := range due {
			if ctx.Err() != nil {
				return nil
			}
			s.do(ctx, j)
		}
		if len(due) > 0 {
			continue // doing them took time; look again before sleeping
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// takeDue pops every job due by now and reports when the next one is.
func (s *Sender) takeDue(now time.Time) ([]*job, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*job
	for s.jobs.Len() > 0 && !s.jobs[0].at.After(now) {
		due = append(due, heap.Pop(&s.jobs).(*job))
	}
	var next time.Time
	if s.jobs.Len() > 0 {
		next = s.jobs[0].at
	}
	return due, next
}

func (s *Sender) do(ctx context.Context, j *job) {
	var err error
	switch j.kind {
	case jobDelivered, jobRead:
		err = s.report(ctx, j)
	case jobReply:
		err = s.answer(ctx, j)
	}
	if err != nil {
		s.forget(j)
		if ctx.Err() == nil {
			s.log.Warn("demo: simulated customer", "channel", j.channelID, "err", err)
		}
	}
}

// forget drops a chain that cannot go on, so the customer may answer a
// later reply instead.
func (s *Sender) forget(j *job) {
	if j.answer {
		s.mu.Lock()
		delete(s.replying, answerKey(j.channelID, j.contact.Handle))
		s.mu.Unlock()
	}
}

// report tells the service the customer's phone got or showed a message,
// then schedules the next step.
func (s *Sender) report(ctx context.Context, j *job) error {
	known, err := s.known(ctx, j)
	if err != nil {
		return err
	}
	now := time.Now()
	if !known {
		if j.tries++; j.tries >= reportTries {
			return fmt.Errorf("message %s was never recorded as sent", j.externalID)
		}
		s.mu.Lock()
		s.push(*j, j.kind, now.Add(reportRetry))
		s.mu.Unlock()
		return nil
	}
	status := inbox.MsgDelivered
	if j.kind == jobRead {
		status = inbox.MsgRead
	}
	if err := s.svc.ReportStatus(ctx, j.channelID, []inbox.StatusReport{{ExternalID: j.externalID, Status: status}}); err != nil {
		return fmt.Errorf("report %s: %w", status, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case j.kind == jobDelivered:
		s.push(*j, jobRead, later(j.readAt, now))
	case j.answer:
		s.push(*j, jobReply, now.Add(j.answerIn))
	}
	return nil
}

// known reports whether the outbox has recorded the message's demo id yet.
func (s *Sender) known(ctx context.Context, j *job) (bool, error) {
	var id string
	err := s.svc.Store().View(ctx, func(tx inbox.Tx) error {
		return tx.Get(inbox.Collection{Tenant: j.tenantID, Name: inbox.CollExternalIDs}, j.channelID+"/"+j.externalID, &id)
	})
	if errors.Is(err, inbox.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up sent message: %w", err)
	}
	return true, nil
}

// answer makes the customer write back.
func (s *Sender) answer(ctx context.Context, j *job) error {
	s.mu.Lock()
	delete(s.replying, answerKey(j.channelID, j.contact.Handle))
	text := replies[s.rng.IntN(len(replies))]
	s.mu.Unlock()
	_, err := s.svc.Receive(ctx, j.channelID, []inbox.Inbound{{
		ExternalID:    "demo-in-" + uuid.NewString(),
		ContactHandle: j.contact.Handle,
		ContactName:   j.contact.Name,
		Kind:          inbox.KindText,
		Text:          text,
	}})
	if err != nil {
		return fmt.Errorf("customer answer: %w", err)
	}
	return nil
}
