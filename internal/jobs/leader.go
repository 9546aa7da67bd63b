package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// DefaultLeaseTTL is how long a job's lease lasts without renewal: the
// longest a job pauses when the process running it dies.
const DefaultLeaseTTL = 30 * time.Second

// LeaderConfig configures a Leader.
type LeaderConfig struct {
	// Store holds the leases. Nil means this is the only process: every
	// job is ours and runs as if there were no lease at all.
	Store inbox.Store
	// Holder names this process in the leases; it must differ between
	// processes sharing the store (the hub's node id does).
	Holder string
	// TTL is the lease's lifetime (default DefaultLeaseTTL). The holder
	// renews every TTL/4 and, when it cannot renew, stops the job at
	// 3/4 of the TTL after its last renewal, leaving a quarter for the
	// job to wind down before another process may take it.
	TTL time.Duration
	// Renew overrides the renewal (and take-over poll) interval; tests
	// make it short. Default TTL/4.
	Renew time.Duration
	// Now is the clock the lease is judged by; tests replace it.
	Now    func() time.Time
	Logger *slog.Logger
}

// Leader runs each named background job in one process at a time among
// the processes sharing a store: the outbox, retention, erasure, snoozes.
// A process that dies loses its leases after the TTL and another takes
// the jobs over.
type Leader struct {
	store  inbox.Store
	holder string
	ttl    time.Duration
	renew  time.Duration
	now    func() time.Time
	log    *slog.Logger
}

// NewLeader fills in cfg's defaults.
func NewLeader(cfg LeaderConfig) *Leader {
	l := &Leader{store: cfg.Store, holder: cfg.Holder, ttl: cfg.TTL, renew: cfg.Renew, now: cfg.Now, log: cfg.Logger}
	if l.ttl <= 0 {
		l.ttl = DefaultLeaseTTL
	}
	if l.renew <= 0 {
		l.renew = l.ttl / 4
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
}

// Wrap returns fn guarded by the lease name, for a supervisor that runs
// func(ctx) error loops.
func (l *Leader) Wrap(name string, fn func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error { return l.Run(ctx, name, fn) }
}

// Run calls fn while this process holds the lease name, until ctx ends.
// fn gets a context that is cancelled when the lease is lost; it must
// return soon after. When it does, Run waits to win the lease again. Run
// returns fn's error if fn stops by itself, and nil when ctx ends, after
// releasing the lease so another process can take over at once.
func (l *Leader) Run(ctx context.Context, name string, fn func(context.Context) error) error {
	if l == nil || l.store == nil {
		return fn(ctx)
	}
	if l.holder == "" {
		return errors.New("jobs: a leader needs a holder name")
	}
	log := l.log.With("job", name, "holder", l.holder)
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wait.C:
		}
		start := l.now()
		// Bounded, so a hung store cannot stall the take-over loop; the
		// job's deadline counts from start, before the write.
		actx, acancel := context.WithTimeout(ctx, l.ttl/4)
		lease, err := inbox.AcquireLease(actx, l.store, name, l.holder, start, l.ttl)
		acancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("jobs: taking lease", "err", err)
			}
			wait.Reset(l.renew)
			continue
		}
		if !lease.Held(l.holder, start) {
			wait.Reset(l.renew)
			continue
		}
		log.Debug("jobs: lease taken; running")
		stopped, err := l.hold(ctx, log, name, start, fn)
		if stopped {
			l.release(log, name)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wait.Reset(l.renew)
	}
}

// hold runs fn and renews the lease until fn returns or the lease is
// lost. stopped reports that fn returned by itself or ctx ended.
func (l *Leader) hold(ctx context.Context, log *slog.Logger, name string, renewed time.Time, fn func(context.Context) error) (stopped bool, err error) {
	jobCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(jobCtx) }()
	// Past this instant of our clock the lease may be someone else's
	// soon: stop while a quarter of the TTL is left for winding down.
	deadline := renewed.Add(l.ttl - l.ttl/4)
	tick := time.NewTicker(l.renew)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return true, err
		case <-tick.C:
		}
		start := l.now()
		// A renewal that hangs (a store cut off without an error) must
		// not keep fn running past the deadline, where another process
		// may take the lease: it gets until the deadline at most.
		wait := deadline.Sub(start)
		if wait <= 0 {
			wait = l.renew
		}
		rctx, rcancel := context.WithTimeout(ctx, wait)
		_, rerr := inbox.RenewLease(rctx, l.store, name, l.holder, start, l.ttl)
		rcancel()
		switch {
		case rerr == nil:
			deadline = start.Add(l.ttl - l.ttl/4)
			continue
		case ctx.Err() != nil:
			// Shutting down: let the done branch report.
			continue
		case inbox.ErrorCode(rerr) == inbox.CodeConflict:
			log.Warn("jobs: lease lost to another process; stopping", "err", rerr)
		case l.now().Before(deadline):
			log.Warn("jobs: renewing lease failed; retrying", "err", rerr)
			continue
		default:
			log.Warn("jobs: lease could not be renewed in time; stopping", "err", rerr)
		}
		cancel()
		err := <-done
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("jobs: job stopped with an error", "err", err)
		}
		return false, nil
	}
}

func (l *Leader) release(log *slog.Logger, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := inbox.ReleaseLease(ctx, l.store, name, l.holder); err != nil {
		log.Warn("jobs: releasing lease", "err", err)
	}
}
