package loadtest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

// ingestResult is what the ingest scenario measured.
type ingestResult struct {
	Messages  int64
	Errors    int64
	FirstErr  error
	Elapsed   time.Duration
	Rate      float64    // durable messages per second
	Receive   *Histogram // one Service.Receive call, until durable
	Commit    *Histogram // one group commit: its writes appended to the log, and the fsync
	Commits   int64
	PerCommit float64 // Receive calls per commit, mean
}

// runIngest measures durable ingest in this process: a real bbolt file in
// dir with fsync on, the inbox service on top, and writers goroutines each
// storing one inbound customer message per Service.Receive call, from
// contacts customers, for d. Every contact has a conversation before the
// clock starts, so what is measured is the steady state of a busy inbox.
// With a profile path, the measured phase's CPU profile is written there.
func runIngest(ctx context.Context, dir string, writers, contacts int, d time.Duration, profile string) (*ingestResult, error) {
	res := &ingestResult{Receive: new(Histogram), Commit: new(Histogram)}
	var measuring atomic.Bool
	var commits atomic.Int64
	store, err := bolt.Open(filepath.Join(dir, "ingest.db"), bolt.Options{
		Logger: slog.New(slog.DiscardHandler),
		OnCommit: func(took time.Duration, n int) {
			if measuring.Load() {
				res.Commit.Record(took)
				commits.Add(1)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	// As `onebox serve` runs on this store.
	if _, _, changed := bolt.AllowSyncThreads(); changed {
		defer runtime.SetDefaultGOMAXPROCS()
	}
	svc, err := inbox.NewService(inbox.Config{Store: store})
	if err != nil {
		return nil, err
	}
	t, admin, _, _, err := svc.CreateTenant(ctx, "Load test")
	if err != nil {
		return nil, fmt.Errorf("create tenant: %w", err)
	}
	ch, err := svc.CreateChannel(ctx, inbox.Principal{Tenant: t, Agent: admin}, inbox.ChannelDemo, "Load test", nil)
	if err != nil {
		return nil, fmt.Errorf("create channel: %w", err)
	}
	msg := func(w, i, contact int) []inbox.Inbound {
		c := strconv.Itoa(contact)
		return []inbox.Inbound{{
			ExternalID:    "lt-" + strconv.Itoa(w) + "-" + strconv.Itoa(i),
			ContactHandle: "+1555" + c,
			ContactName:   "Customer " + c,
			Text:          "Hello, I have a question about my order " + strconv.Itoa(i) + ".",
		}}
	}

	// First contact: every customer gets a contact and a conversation.
	if err := parallel(ctx, contacts, writers, func(ctx context.Context, c int) error {
		_, err := svc.Receive(ctx, ch.ID, msg(-1, c, c))
		return err
	}); err != nil {
		return nil, fmt.Errorf("first messages: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var n, nerr atomic.Int64
	var errOnce sync.Once
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	stopAt := start.Add(d)
	measuring.Store(true)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for i := 0; ctx.Err() == nil && time.Now().Before(stopAt); i++ {
				in := msg(w, i, rng.IntN(contacts))
				t0 := time.Now()
				_, err := svc.Receive(ctx, ch.ID, in)
				took := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					nerr.Add(1)
					errOnce.Do(func() { res.FirstErr = err })
					continue
				}
				res.Receive.Record(took)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	measuring.Store(false)
	res.Messages, res.Errors, res.Commits = n.Load(), nerr.Load(), commits.Load()
	if res.Elapsed > 0 {
		res.Rate = float64(res.Messages) / res.Elapsed.Seconds()
	}
	if res.Commits > 0 {
		res.PerCommit = float64(res.Messages+res.Errors) / float64(res.Commits)
	}
	if err := ctx.Err(); err != nil && res.Messages == 0 {
		return res, err
	}
	if res.Messages == 0 && res.FirstErr != nil {
		return res, res.FirstErr
	}
	return res, nil
}

// parallel runs fn(i) for i in [0,n) on at most par goroutines, stopping at
// the first error.
func parallel(ctx context.Context, n, par int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var first error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// probeFsync measures the disk under dir: how long one 4 KiB write and its
// fsync take, repeated for about d. A group commit is one such append to
// the store's log (larger), so this is the floor under every commit.
func probeFsync(ctx context.Context, dir string, d time.Duration) (*Histogram, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := new(Histogram)
	buf := make([]byte, 4096)
	end := time.Now().Add(d)
	for i := 0; i < 10000 && ctx.Err() == nil && (i < 5 || time.Now().Before(end)); i++ {
		buf[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		h.Record(time.Since(t0))
	}
	return h, ctx.Err()
}
