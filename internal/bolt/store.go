// Package bolt is the bbolt implementation of inbox.Store.
//
// bbolt allows one writer at a time and every commit pays an fsync, so
// committing each Update on its own would cap ingest at roughly one message
// per fsync. Instead Updates are queued to a single committer goroutine that
// runs everything queued in one bbolt transaction and commits it with one
// fsync (group commit). Requests in a batch stay independent: a failing
// request's writes are undone from an undo log so it does not take its
// neighbours down with it.
//
// Layout: bucket "g" holds global collections and bucket "t/<tenant id>" each
// tenant's; inside them one nested bucket per collection name. A tenant bucket
// also holds "events" (8-byte big-endian seq -> JSON inbox.Event) and "meta"
// ("head" -> 8-byte big-endian last seq), which is why those two names are
// refused as tenant collection names.
package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onebox/onebox/internal/inbox"
	bolterrors "go.etcd.io/bbolt/errors"

	bbolt "go.etcd.io/bbolt"
)

var _ inbox.Store = (*Store)(nil)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("store closed")

// Options configures a Store. The zero value is usable.
type Options struct {
	// Publisher receives each batch's committed events; may be nil.
	Publisher inbox.Publisher
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MaxBatch caps how many Updates share one commit (default 1024).
	MaxBatch int
	// OnCommit, when set, is called from the committer after every successful
	// commit with the write transaction's duration (including fsync) and the
	// number of Updates it carried. It must be quick: commits wait for it.
	OnCommit func(d time.Duration, batch int)
}

// Store is an inbox.Store backed by one bbolt file. Its methods are safe for
// concurrent use, but must not be called from inside an Update or View fn:
// an Update from inside an Update deadlocks on the single committer.
type Store struct {
	db    *bbolt.DB
	path  string
	bopts *bbolt.Options
	// dbMu lets Compact swap db: reads and commits hold it shared, Compact
	// exclusively.
	dbMu    sync.RWMutex
	pub     inbox.Publisher
	log     *slog.Logger
	max     int
	commitC func(time.Duration, int)

	// gen changes when Compact replaces the file, which invalidates every
	// snapshot taken before. ver belongs to the committer.
	gen uint64
	ver versions
	// speculated counts speculative runs applied without running fn again.
	speculated atomic.Uint64

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	reqs   chan *request
	done   chan struct{} // closed when the committer has exited

	// pubq carries committed batches' events, in commit order, to the
	// publisher goroutine, so fanning out one batch overlaps with committing
	// the next instead of holding up every writer.
	pubq    chan []inbox.Event
	pubDone chan struct{}

	closeOnce sync.Once
	closeErr  error

	// testEnqueued, when set before the first Update, is called once a
	// request sits in the queue; tests use it to build batches
	// deterministically.
	testEnqueued func()
	// testSnapshotted, when set, is called when a backup's read
	// transaction has ended and before the copy is sent.
	testSnapshotted func()
}

// Request states: the caller may only withdraw a request the committer has
// not taken yet, so "cancelled" guarantees nothing was written.
const (
	reqQueued int32 = iota
	reqTaken
	reqCancelled
)

type request struct {
	fn    func(inbox.Tx) error
	spec  *spec // a speculative run's result to check and apply, if any
	state atomic.Int32
	res   chan error // buffered 1, so the committer never blocks answering
}

// Open opens (creating if needed) the store at path and starts its committer.
// A second process (or a second Open in this one) fails after about a second
// instead of waiting forever for the file lock.
func Open(path string, opts Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: create directory: %w", err)
	}
	bopts := &bbolt.Options{
		Timeout: time.Second,
		NoSync:  false, // Update promises durability; never trade it away.
		// Not writing the freelist on every commit cuts the pages each fsync
		// carries (etcd runs the same way); it costs Open a scan of the file
		// to rebuild the list, and no durability. The map freelist keeps
		// allocation cheap as the file grows.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	}
	db, err := bbolt.Open(path, 0o600, bopts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: database is locked by another process? (%w)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		path:    path,
		bopts:   bopts,
		pub:     opts.Publisher,
		log:     opts.Logger,
		max:     opts.MaxBatch,
		commitC: opts.OnCommit,
		done:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.max <= 0 {
		s.max = 1024
	}
	s.reqs = make(chan *request, s.max)
	s.pubq = make(chan []inbox.Event, 1024)
	s.pubDone = make(chan struct{})
	go s.publisher()
	go s.committer()
	return s, nil
}

// Update runs fn in a write transaction and returns once its writes are
// durable (fsynced). Its events go to the publisher right after, in commit
// order, from a goroutine of their own. If fn returns an
// error or panics, none of its writes are kept and Update returns that error.
//
// If ctx ends while the request is still queued, Update returns ctx.Err() and
// nothing is written. If it ends after the committer has taken the request,
// Update also returns ctx.Err() but the write may still commit: callers that
// must know should re-read.
func (s *Store) Update(ctx context.Context, fn func(inbox.Tx) error) error {
	if fn == nil {
		return errors.New("update: nil fn")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{fn: fn, res: make(chan error, 1)}
	if err := s.enqueue(ctx, r); err != nil {
		return err
	}
	select {
	case err := <-r.res:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqCancelled) {
			return ctx.Err()
		}
		// Taken: the outcome is decided by the committer; we just stop waiting.
		return ctx.Err()
	}
}

// enqueue holds the read lock across the send so Close cannot close the
// channel under a sender.
func (s *Store) enqueue(ctx context.Context, r *request) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.testEnqueued != nil {
		s.testEnqueued()
	}
	return nil
}

// View runs fn in a read-only transaction; writes inside it fail.
func (s *Store) View(ctx context.Context, fn func(inbox.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.isClosed() {
		return ErrClosed
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.View(func(btx *bbolt.Tx) error {
		t := &tx{btx: btx}
		defer t.finish()
		return fn(t)
	})
}

// Events returns up to limit events with seq > since, oldest first, and the
// tenant's head. A limit <= 0 returns just the head.
func (s *Store) Events(ctx context.Context, tenant string, since uint64, limit int) ([]inbox.Event, uint64, error) {
	var (
		events []inbox.Event
		head   uint64
	)
	err := s.View(ctx, func(itx inbox.Tx) error {
		t := itx.(*tx)
		var err error
		if head, err = t.Head(tenant); err != nil {
			return err
		}
		b := t.readBucket(tenantBucket(tenant), bucketEvents)
		if b == nil || limit <= 0 || since >= head {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(since + 1)); k != nil && len(events) < limit; k, v = c.Next() {
			var e inbox.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			e.TenantID = tenant
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("events of tenant %q: %w", tenant, err)
	}
	return events, head, nil
}

// Oldest returns the first retained seq. With nothing retained that is
// head+1: 1 for a tenant that never wrote, and "after everything" for a log
// trimmed to empty, so a reader asking for older events learns it missed some.
func (s *Store) Oldest(ctx context.Context, tenant string) (uint64, error) {
	var oldest uint64
	err := s.View(ctx, func(itx inbox.Tx) error {
		t := itx.(*tx)
		if b := t.readBucket(tenantBucket(tenant), bucketEvents); b != nil {
			if k, _ := b.Cursor().First(); k != nil {
				oldest = binary.BigEndian.Uint64(k)
				return nil
			}
		}
		head, err := t.Head(tenant)
		oldest = head + 1
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("oldest event of tenant %q: %w", tenant, err)
	}
	return oldest, nil
}

// Close stops new Updates, lets the committer finish what is already queued
// and closes the file. Later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.reqs)
		s.mu.Unlock()
		<-s.done
		close(s.pubq)
		<-s.pubDone
		s.dbMu.Lock()
		defer s.dbMu.Unlock()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return s.closeErr
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// committer is the only writer. It blocks for one request, then takes
// whatever else is already queued so one fsync serves them all.
func (s *Store) committer() {
	batch := make([]*request, 0, s.max)
	for r := range s.reqs {
		batch = append(batch[:0], r)
	drain:
		for len(batch) < s.max {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commit(batch)
		clear(batch) // let answered requests be collected
	}
	close(s.done) // not deferred: a committer lost to Goexit has a successor
}

// commit runs one batch in one write transaction. Each request's outcome is
// kept apart: its error goes to it alone, its events are published only if it
// succeeded and the commit did.
func (s *Store) commit(batch []*request) {
	taken := batch[:0]
	for _, r := range batch {
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			taken = append(taken, r)
		}
	}
	if len(taken) == 0 {
		return
	}

	start := time.Now()
	// Held for the bbolt transaction only: publishing below may wait on a
	// reader, and readers wait while Compact waits for this lock.
	s.dbMu.RLock()
	locked := true
	defer func() {
		if locked {
			s.dbMu.RUnlock()
		}
	}()
	btx, err := s.db.Begin(true)
	if err != nil {
		answerAll(taken, fmt.Errorf("begin: %w", err))
		return
	}
	finished := false
	defer func() {
		if finished {
			return
		}
		// A fn called runtime.Goexit (t.FailNow in a test, say), which cannot
		// be recovered: release the write lock, fail the batch and hand the
		// queue to a new committer before this goroutine dies.
		_ = btx.Rollback()
		s.log.Error("bolt: update fn called runtime.Goexit", "batch", len(taken))
		answerAll(taken, errors.New("update fn exited its goroutine (runtime.Goexit)"))
		go s.committer()
	}()
	results := make([]error, len(taken))
	var events []inbox.Event
	buckets := make(map[string]*bbolt.Bucket)
	txid := btx.ID()
	s.ver.rotate(txid)
	for i, r := range taken {
		t := &tx{btx: btx, writable: true, buckets: buckets, ver: &s.ver, txid: txid}
		if sp := r.spec; sp != nil && sp.gen == s.gen && s.ver.unchanged(sp.reads, sp.txid) {
			s.speculated.Add(1)
			if results[i] = sp.err; sp.err == nil {
				results[i] = s.applySpec(t, sp)
			}
		} else {
			results[i] = s.run(t, r.fn)
		}
		if results[i] == nil {
			events = append(events, t.events...)
			continue
		}
		if err := t.rollback(); err != nil {
			// The transaction now holds half-undone writes: nothing in it can
			// be trusted, so the whole batch fails.
			finished = true
			_ = btx.Rollback()
			s.log.Error("bolt: undo failed, batch dropped", "err", err, "batch", len(taken))
			answerAll(taken, fmt.Errorf("undo failed request: %w", err))
			return
		}
	}
	finished = true
	err = btx.Commit()
	locked = false
	s.dbMu.RUnlock()
	if err != nil {
		s.log.Error("bolt: commit failed", "err", err, "batch", len(taken))
		answerAll(taken, fmt.Errorf("commit: %w", err))
		return
	}
	if s.commitC != nil {
		s.commitC(time.Since(start), len(taken))
	}
	if s.pub != nil && len(events) > 0 {
		s.pubq <- events
	}
	for i, r := range taken {
		r.res <- results[i]
	}
}

// applySpec applies a checked speculation like run runs a fn.
func (s *Store) applySpec(t *tx, sp *spec) (err error) {
	defer t.finish()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("bolt: applying a speculative update panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("update panicked: %v", p)
		}
	}()
	return t.apply(sp)
}

// run calls fn, turning a panic into an error so one bad request cannot kill
// the committer and strand every other caller.
func (s *Store) run(t *tx, fn func(inbox.Tx) error) (err error) {
	defer t.finish()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("bolt: update panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("update panicked: %v", p)
		}
	}()
	return fn(t)
}

// publisher hands committed events to the Publisher one batch at a time,
// in commit order, which is seq order within each tenant.
func (s *Store) publisher() {
	defer close(s.pubDone)
	for events := range s.pubq {
		s.publish(events)
	}
}

// publish must not panic out of the publisher goroutine: a bad subscriber
// must not stop every later event.
func (s *Store) publish(events []inbox.Event) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("bolt: publisher panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	s.pub.Publish(events)
}

func answerAll(rs []*request, err error) {
	for _, r := range rs {
		r.res <- err
	}
}
