package push

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Planner is the part of the inbox service the Dispatcher reads and prunes
// through; *inbox.Service implements it.
type Planner interface {
	PlanPush(ctx context.Context, tenantID, conversationID string, online []string) (inbox.PushPlan, error)
	DropPushDevices(ctx context.Context, tenantID string, refs []inbox.PushDeviceRef) error
}

var _ Planner = (*inbox.Service)(nil)

// Config wires a Dispatcher. Feed, Planner and Live are required.
type Config struct {
	Feed    *Feed
	Planner Planner
	// Live tells who holds a live socket; they are not pushed.
	Live inbox.Live
	// Senders deliver by device kind (inbox.PushWebPush, inbox.PushFCM).
	// Devices of a kind with no sender are skipped.
	Senders map[string]Sender
	Logger  *slog.Logger
	Now     func() time.Time

	// Settle is how long the first message of a conversation waits, so the
	// few messages customers often send in a row make one push. Default 2s.
	Settle time.Duration
	// Window is the least time between two pushes about one conversation
	// (so to each agent): later messages in it wait for its end and go out
	// as one push showing the latest. Default 30s.
	Window time.Duration
	// MaxAge is how old a message may be and still be pushed about,
	// retries included: after an outage nobody gets a pile of stale
	// notifications. Default 10 minutes.
	MaxAge time.Duration
	// TTL is how long push services keep a push for a device that is off.
	// Default 24h.
	TTL time.Duration
	// Workers send in parallel (pushes wait on the network). Default 8.
	Workers int
	// Queue bounds sends waiting for a worker; beyond it pushes are
	// dropped and counted. Default 4096.
	Queue int
	// MaxPending bounds conversations waiting to be pushed about. Default
	// 10000.
	MaxPending int
	// MaxAttempts bounds tries per push. Default 5.
	MaxAttempts int
	// Backoff is the first retry's wait; it doubles up to a minute.
	// Default 1s.
	Backoff time.Duration
	// Observe, when set, is called after each attempt once its outcome
	// has been acted on (device forgotten, retry scheduled).
	Observe func(d inbox.PushDevice, r Result)
}

// Stats are counters for metrics.
type Stats struct {
	Delivered uint64 // pushes a service accepted
	Gone      uint64 // devices forgotten because the service said they are gone
	Rejected  uint64 // pushes a service refused (the server's fault)
	Retried   uint64 // retries scheduled
	GaveUp    uint64 // pushes abandoned: out of attempts or too old
	Dropped   uint64 // pushes or events dropped because a queue was full
	Skipped   uint64 // conversations read, resolved or with nobody to push by then
}

// Dispatcher decides who gets pushed and when. Run it with Run.
type Dispatcher struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	sendC   chan *job
	retryC  chan *job
	pending map[convKey]*item
	queue   itemHeap
	retries jobHeap
	// lastPush is when each conversation was last pushed about; entries
	// older than Window are pruned.
	lastPush  map[convKey]time.Time
	lastPrune time.Time

	delivered, gone, rejected, retried, gaveUp, dropped, skipped atomic.Uint64
}

type convKey struct{ tenant, conv string }

// item is a conversation waiting to be pushed about, with its latest
// customer message.
type item struct {
	key convKey
	seq uint64
	msg inbox.Message
	due time.Time
}

// job is one push to one device.
type job struct {
	device   inbox.PushDevice
	n        Notification
	attempt  int
	due      time.Time
	deadline time.Time
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Feed == nil || cfg.Planner == nil || cfg.Live == nil {
		return nil, errors.New("push: Feed, Planner and Live are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.Settle, 2*time.Second)
	setDefault(&cfg.Window, 30*time.Second)
	setDefault(&cfg.MaxAge, 10*time.Minute)
	setDefault(&cfg.TTL, 24*time.Hour)
	setDefault(&cfg.Backoff, time.Second)
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 10000
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	return &Dispatcher{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		sendC:    make(chan *job, cfg.Queue),
		retryC:   make(chan *job, cfg.Queue),
		pending:  map[convKey]*item{},
		lastPush: map[convKey]time.Time{},
	}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Stats returns the counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{
		Delivered: d.delivered.Load(), Gone: d.gone.Load(), Rejected: d.rejected.Load(),
		Retried: d.retried.Load(), GaveUp: d.gaveUp.Load(),
		Dropped: d.dropped.Load() + d.cfg.Feed.Dropped(), Skipped: d.skipped.Load(),
	}
}

// Run pushes until ctx ends. One goroutine keeps the schedule (what is
// due, coalescing, retries); Workers goroutines talk to push services.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range d.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(ctx)
		}()
	}
	defer wg.Wait()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := d.now()
		for _, j := range d.step(ctx, now) {
			d.enqueue(j)
		}
		timer.Reset(d.nextWake(now))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-d.cfg.Feed.c:
			d.accept(ev, d.now())
		case j := <-d.retryC:
			heap.Push(&d.retries, j)
		case <-timer.C:
		}
	}
}

func (d *Dispatcher) enqueue(j *job) {
	select {
	case d.sendC <- j:
	default:
		// Logged at the 1st, 2nd, 4th, 8th... drop: a flood of warnings
		// would not help a server that is already behind.
		if n := d.dropped.Add(1); n&(n-1) == 0 {
			d.log.Warn("push: send queue full, dropping pushes", "dropped", n)
		}
	}
}

func (d *Dispatcher) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-d.sendC:
			retry := d.send(ctx, j, d.now())
			if retry == nil {
				continue
			}
			select {
			case d.retryC <- retry:
			case <-ctx.Done():
				return
			}
		}
	}
}

// inboundMark is how an inbound message's JSON (as encoding/json writes
// it) names its direction: the agents' own messages, most of the traffic
// when a team is busy, are passed over without decoding them. Quotes inside
// texts are escaped, so a text cannot fake it.
const inboundMark = `"direction":"in"`

// accept notes a committed event. Only new customer messages call for a
// push; each conversation keeps its latest one until its push is due.
func (d *Dispatcher) accept(ev inbox.Event, now time.Time) {
	if ev.Type != inbox.EventMessageCreated || !bytes.Contains(ev.Data, []byte(inboundMark)) {
		return
	}
	var m inbox.Message
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		d.log.Error("push: undecodable message event", "tenant", ev.TenantID, "seq", ev.Seq, "err", err)
		return
	}
	if m.Direction != inbox.DirectionIn || m.Author.Type != "contact" || m.Kind == inbox.KindNote || m.Private {
		return
	}
	if now.Sub(m.CreatedAt) > d.cfg.MaxAge {
		d.skipped.Add(1)
		return
	}
	k := convKey{ev.TenantID, m.ConversationID}
	if it := d.pending[k]; it != nil {
		if ev.Seq > it.seq {
			it.seq, it.msg = ev.Seq, m
		}
		return
	}
	if len(d.pending) >= d.cfg.MaxPending {
		d.dropped.Add(1)
		return
	}
	// Settle counts from the message's arrival, so a dispatcher that
	// fell behind does not add its delay to the settling time.
	due := m.CreatedAt.Add(d.cfg.Settle)
	if last, ok := d.lastPush[k]; ok && last.Add(d.cfg.Window).After(due) {
		due = last.Add(d.cfg.Window)
	}
	it := &item{key: k, seq: ev.Seq, msg: m, due: due}
	d.pending[k] = it
	heap.Push(&d.queue, it)
}

// step plans every conversation whose push is due and returns the pushes
// to send, with the retries that are due.
func (d *Dispatcher) step(ctx context.Context, now time.Time) []*job {
	var jobs []*job
	for d.queue.Len() > 0 && !d.queue[0].due.After(now) {
		it := heap.Pop(&d.queue).(*item)
		delete(d.pending, it.key)
		planned := d.plan(ctx, it, now)
		if len(planned) > 0 {
			// Only a push sent opens the window: a conversation nobody
			// was pushed about (all online) is pushed promptly later.
			d.lastPush[it.key] = now
		}
		jobs = append(jobs, planned...)
	}
	for d.retries.Len() > 0 && !d.retries[0].due.After(now) {
		jobs = append(jobs, heap.Pop(&d.retries).(*job))
	}
	if now.Sub(d.lastPrune) > d.cfg.Window {
		d.lastPrune = now
		for k, at := range d.lastPush {
			if now.Sub(at) >= d.cfg.Window {
				delete(d.lastPush, k)
			}
		}
	}
	return jobs
}

// nextWake is how long the schedule may sleep.
func (d *Dispatcher) nextWake(now time.Time) time.Duration {
	wake := time.Hour
	if d.queue.Len() > 0 {
		wake = min(wake, d.queue[0].due.Sub(now))
	}
	if d.retries.Len() > 0 {
		wake = min(wake, d.retries[0].due.Sub(now))
	}
	return max(wake, time.Millisecond)
}

// plan turns a due conversation into pushes, reading who should get them
// from the state committed now: the conversation may have been read,
// resolved or assigned since its message arrived.
func (d *Dispatcher) plan(ctx context.Context, it *item, now time.Time) []*job {
	deadline := it.msg.CreatedAt.Add(d.cfg.MaxAge)
	if !now.Before(deadline) {
		d.skipped.Add(1)
		return nil
	}
	p, err := d.cfg.Planner.PlanPush(ctx, it.key.tenant, it.key.conv, d.cfg.Live.Online(it.key.tenant))
	if err != nil {
		if inbox.ErrorCode(err) != inbox.CodeNotFound {
			d.log.Error("push: plan", "tenant", it.key.tenant, "conversation", it.key.conv, "err", err)
		}
		d.skipped.Add(1)
		return nil
	}
	if len(p.Stale) > 0 {
		if err := d.cfg.Planner.DropPushDevices(ctx, it.key.tenant, p.Stale); err != nil {
			d.log.Error("push: drop lapsed devices", "tenant", it.key.tenant, "err", err)
		}
	}
	if len(p.Devices) == 0 {
		d.skipped.Add(1)
		return nil
	}
	p.Conversation.TenantID = it.key.tenant
	n := Notification{
		Payload: buildPayload(p.Conversation, it.msg, it.seq, p.Private),
		Private: p.Private,
		Topic:   Topic(it.key.tenant, it.key.conv),
		Urgent:  true,
		TTL:     d.cfg.TTL,
	}
	jobs := make([]*job, 0, len(p.Devices))
	for _, dev := range p.Devices {
		if d.cfg.Senders[dev.Kind] == nil {
			continue
		}
		jobs = append(jobs, &job{device: dev, n: n, due: now, deadline: deadline})
	}
	return jobs
}

// send makes one attempt and handles its outcome. It returns the job
// rescheduled when it should be tried again.
func (d *Dispatcher) send(ctx context.Context, j *job, now time.Time) *job {
	if !now.Before(j.deadline) {
		d.gaveUp.Add(1)
		return nil
	}
	s := d.cfg.Senders[j.device.Kind]
	if s == nil {
		return nil
	}
	j.attempt++
	res := s.Send(ctx, j.device, j.n)
	if d.cfg.Observe != nil {
		defer d.cfg.Observe(j.device, res)
	}
	log := d.log.With("kind", j.device.Kind, "device", j.device.ID, "tenant", j.device.TenantID, "status", res.Status)
	switch res.Outcome {
	case Delivered:
		d.delivered.Add(1)
	case Gone:
		log.Info("push: device gone, forgetting it")
		if err := d.cfg.Planner.DropPushDevices(ctx, j.device.TenantID, []inbox.PushDeviceRef{j.device.Ref()}); err != nil {
			log.Error("push: forget device", "err", err)
		}
		d.gone.Add(1)
	case Rejected:
		d.rejected.Add(1)
		log.Warn("push: service refused the push (server configuration or payload)", "err", res.Err)
	case Retry:
		if ctx.Err() != nil {
			return nil
		}
		wait := d.backoff(j.attempt)
		if res.RetryAfter > wait {
			wait = res.RetryAfter
		}
		due := d.now().Add(wait)
		if j.attempt >= d.cfg.MaxAttempts || !due.Before(j.deadline) {
			d.gaveUp.Add(1)
			log.Warn("push: giving up", "attempts", j.attempt, "err", res.Err)
			return nil
		}
		d.retried.Add(1)
		log.Debug("push: will retry", "in", wait, "err", res.Err)
		j.due = due
		return j
	}
	return nil
}

// backoff doubles from Backoff up to a minute, with jitter so devices
// refused together do not retry together.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	w := d.cfg.Backoff << min(attempt-1, 6)
	w = min(w, time.Minute)
	return w/2 + rand.N(w/2+1)
}

// itemHeap orders waiting conversations by due time.
type itemHeap []*item

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h itemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)        { *h = append(*h, x.(*item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

// jobHeap orders retries by due time.
type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h jobHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)        { *h = append(*h, x.(*job)) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}
