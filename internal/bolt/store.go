// Package bolt is the bbolt implementation of inbox.Store.
//
// bbolt allows one writer at a time and every commit syncs the B-tree pages
// it changed, scattered over the file, so committing each Update on its own
// would cap ingest at roughly one message per sync. Instead Updates are
// queued to a single committer goroutine that runs everything queued as one
// group and makes it durable with one sequential append to a write-ahead
// log (group commit); the group's writes then become visible in an
// in-memory overlay, and a checkpointer copies them into the bbolt file in
// large transactions behind the writers. Requests in a group stay
// independent: a failing request's writes are taken back from an undo log
// so it does not take its neighbours down with it.
//
// Layout: bucket "g" holds global collections and bucket "t/<tenant id>" each
// tenant's; inside them one nested bucket per collection name. A tenant bucket
// also holds "events" (8-byte big-endian seq -> JSON inbox.Event) and "meta"
// ("head" -> 8-byte big-endian last seq), which is why those two names are
// refused as tenant collection names. Bucket "w" records the last group
// commit the file holds.
package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
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
	// OnCommit, when set, is called from the committer after every group
	// commit with its duration (running the writes, appending them to the
	// log and syncing it) and the number of Updates it carried. It must be
	// quick: commits wait for it.
	OnCommit func(d time.Duration, batch int)
	// OnCheckpoint, when set, is called from the checkpointer after each
	// checkpoint with its duration and the entries it copied into the file.
	OnCheckpoint func(d time.Duration, entries int)
}

// Checkpoint policy: the committer freezes the overlay for the checkpointer
// once it holds this many entries or is this old, whichever comes first.
// Larger checkpoints let more writes share the B-tree pages each one
// rewrites; the overlay costs memory and lookups until then.
const (
	checkpointEntries  = 200_000
	checkpointInterval = 2 * time.Second
	// overlayLimit makes the committer wait for a running checkpoint before
	// growing the overlay further, so a slow disk bounds memory.
	overlayLimit = 4 * checkpointEntries
)

// initialMmap is the address space mapped for the file from the start.
const initialMmap = 1 << 30

var (
	bucketWAL  = []byte("w")
	keyApplied = []byte("applied")
	keyID      = []byte("id")
)

// Store is an inbox.Store backed by one bbolt file and its write-ahead log.
// Its methods are safe for concurrent use, but must not be called from
// inside an Update or View fn: an Update from inside an Update deadlocks on
// the single committer.
type Store struct {
	db    *bbolt.DB
	path  string
	bopts *bbolt.Options
	// dbMu lets Compact swap db: reads, the committer's snapshots and
	// checkpoints hold it shared, Compact exclusively.
	dbMu    sync.RWMutex
	pub     inbox.Publisher
	log     *slog.Logger
	max     int
	commitC func(time.Duration, int)
	ckptC   func(time.Duration, int)

	// oview is the overlay every reader starts from; viewMu orders the two
	// goroutines that publish new ones (committer and checkpointer).
	oview  atomic.Pointer[oview]
	viewMu sync.Mutex

	// Committer state.
	id     []byte // this database's identity, in every log segment
	wal    *wal
	seq    uint64 // last group commit logged
	failed error  // the log could not be written: nothing more is accepted
	frozen time.Time
	ckpt   *checkpoint // running, if any
	ckptq  chan *checkpoint
	// spare carries the next log segment, made ahead of time by prepare.
	spare  chan *wal
	prepWG sync.WaitGroup
	ckptWG sync.WaitGroup

	// gen changes when Compact replaces the file, which invalidates every
	// snapshot taken before. ver belongs to the committer.
	gen uint64
	ver versions
	// speculated counts speculative runs applied without running fn again.
	speculated atomic.Uint64
	// inflight counts speculative runs underway, not yet queued.
	inflight atomic.Int64

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
	// testCrash, when set, makes Close leave the log as a killed process
	// would: no final checkpoint.
	testCrash atomic.Bool
	// testCheckpointFails makes every checkpoint fail, as a disk that
	// refuses the file's writes would.
	testCheckpointFails atomic.Bool
	// testSnapshotted, when set, is called when a backup's read
	// transaction has ended and before the copy is sent.
	testSnapshotted func()
}

// checkpoint is one run of copying frozen overlay layers into bbolt.
type checkpoint struct {
	layers []layer // newest first
	seq    uint64  // the last group commit they hold
	segs   []segment
	done   chan struct{}
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
	flush *flushReq
	state atomic.Int32
	res   chan error // buffered 1, so the committer never blocks answering
}

// flushReq asks the committer to have everything logged so far copied into
// bbolt. It answers with the checkpoint to wait for, and again when that
// checkpoint was already running (it may not hold the latest writes).
type flushReq struct {
	wait  chan struct{}
	again bool
}

// Open opens (creating if needed) the store at path, replays what its log
// holds beyond the file, and starts its committer. A second process (or a
// second Open in this one) fails after about a second instead of waiting
// forever for the file lock.
func Open(path string, opts Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: create directory: %w", err)
	}
	bopts := &bbolt.Options{
		Timeout: time.Second,
		NoSync:  false, // a checkpoint must be on disk before its log goes.
		// Not writing the freelist on every commit cuts the pages each fsync
		// carries (etcd runs the same way); it costs Open a scan of the file
		// to rebuild the list, and no durability. The map freelist keeps
		// allocation cheap as the file grows.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
		// Map address space (not memory) ahead of the file: growing the map
		// means copying every node a checkpoint holds and waiting for all
		// readers, and the file grows in steps all the time under ingest.
		InitialMmapSize: initialMmap,
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
		ckptC:   opts.OnCheckpoint,
		done:    make(chan struct{}),
		ckptq:   make(chan *checkpoint, 1),
		spare:   make(chan *wal, 1),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.max <= 0 {
		s.max = 1024
	}
	if err := s.recover(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.oview.Store(&oview{seq: s.seq})
	s.frozen = time.Now()
	s.reqs = make(chan *request, s.max)
	s.pubq = make(chan []inbox.Event, 1024)
	s.pubDone = make(chan struct{})
	s.ckptWG.Add(1)
	go s.checkpointer()
	go s.publisher()
	go s.committer()
	return s, nil
}

// applied reads the last group commit the file holds.
func applied(btx *bbolt.Tx) (uint64, error) {
	b := btx.Bucket(bucketWAL)
	if b == nil {
		return 0, nil
	}
	v := b.Get(keyApplied)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("corrupt log position (%d bytes)", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// storeID returns the database's identity, making one when it has none
// yet or when renew asks for a new one.
func storeID(btx *bbolt.Tx, renew bool) ([]byte, error) {
	b, err := btx.CreateBucketIfNotExists(bucketWAL)
	if err != nil {
		return nil, err
	}
	if v := b.Get(keyID); v != nil && len(v) == 16 && !renew {
		return bytes.Clone(v), nil
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	return id, b.Put(keyID, id)
}

// Detach prepares the database file at path to be put in place of another
// one (a restore): it gets a new identity, so the log segments the replaced
// store left behind are never replayed onto it. The file must not be open.
func Detach(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("detach %s: %w", path, err)
	}
	err = db.Update(func(btx *bbolt.Tx) error {
		_, err := storeID(btx, true)
		return err
	})
	return errors.Join(err, db.Close())
}

// LogFiles lists the write-ahead log segments that belong with the database
// file at path, oldest first. A copy of the store needs them too.
func LogFiles(path string) ([]string, error) {
	segs, err := segments(path)
	var names []string
	for _, sg := range segs {
		names = append(names, sg.name)
	}
	return names, err
}

// recover copies the group commits the log holds beyond the file into it,
// removes the old segments and starts a new one.
func (s *Store) recover() error {
	var (
		at uint64
		id []byte
	)
	if err := s.db.Update(func(btx *bbolt.Tx) (err error) {
		if at, err = applied(btx); err != nil {
			return err
		}
		id, err = storeID(btx, false)
		return err
	}); err != nil {
		return err
	}
	segs, err := segments(s.path)
	if err != nil {
		return fmt.Errorf("list log segments: %w", err)
	}
	var pending []layer
	last := at
	// A record cut short can only be the last one written: the group
	// commit a crash interrupted. One followed by records in a later
	// segment means damage, and replaying past it would lose writes.
	damaged := ""
	for _, sg := range segs {
		records := 0
		torn, err := readSegment(sg.name, id, func(seq uint64, l layer) error {
			records++
			if damaged != "" {
				return fmt.Errorf("log segment %s is damaged before its end", damaged)
			}
			if seq <= at {
				return nil
			}
			if seq != last+1 {
				return fmt.Errorf("log segment %s: group commit %d follows %d", filepath.Base(sg.name), seq, last)
			}
			last = seq
			pending = append(pending, l)
			return nil
		})
		if errors.Is(err, errForeignSegment) {
			s.log.Warn("bolt: ignoring a log segment that is not this database's", "segment", filepath.Base(sg.name))
			continue
		}
		if err != nil {
			return err
		}
		if torn {
			damaged = filepath.Base(sg.name)
		}
	}
	if len(pending) > 0 {
		// Newest first, as views keep them.
		for i, j := 0, len(pending)-1; i < j; i, j = i+1, j-1 {
			pending[i], pending[j] = pending[j], pending[i]
		}
		if err := s.db.Update(func(btx *bbolt.Tx) error {
			return applyLayer(btx, flatten(pending), last)
		}); err != nil {
			return fmt.Errorf("replay log: %w", err)
		}
		s.log.Info("bolt: replayed the write-ahead log", "group_commits", last-at, "through", last)
	}
	for _, sg := range segs {
		if err := os.Remove(sg.name); err != nil {
			return fmt.Errorf("remove replayed log segment: %w", err)
		}
	}
	s.seq = last
	s.id = id
	n := uint64(1)
	if len(segs) > 0 {
		n = segs[len(segs)-1].n + 1
	}
	w, err := openSegment(s.path, id, n)
	if err != nil {
		return err
	}
	s.wal = w
	s.prepare(n + 1)
	return nil
}

// applyLayer writes a layer into bbolt and records seq as the last group
// commit the file holds, in the same transaction.
func applyLayer(btx *bbolt.Tx, l layer, seq uint64) error {
	var (
		prefix string
		b      *bbolt.Bucket
	)
	for i, e := range l {
		if i%512 == 511 {
			// A checkpoint is background work: let the writers, whose
			// callers are waiting, have the CPUs first.
			runtime.Gosched()
		}
		top, sub, key, ok := splitVersionKey(e.key)
		if !ok {
			return fmt.Errorf("apply: malformed key %q", e.key)
		}
		if p := e.key[:len(e.key)-len(key)]; p != prefix || b == nil {
			prefix = p
			tb, err := btx.CreateBucketIfNotExists(top)
			if err != nil {
				return fmt.Errorf("create bucket %q: %w", top, err)
			}
			if b, err = tb.CreateBucketIfNotExists(sub); err != nil {
				return fmt.Errorf("create bucket %q/%q: %w", top, sub, err)
			}
			if string(sub) == string(bucketEvents) {
				// The log only grows at its end, so full pages (not bbolt's
				// half-full splits) halve its size.
				b.FillPercent = 1.0
			}
		}
		var err error
		if e.del {
			err = b.Delete(key)
		} else {
			err = b.Put(key, e.val)
		}
		if err != nil {
			return fmt.Errorf("apply %q/%q %q: %w", top, sub, key, err)
		}
	}
	wb, err := btx.CreateBucketIfNotExists(bucketWAL)
	if err != nil {
		return fmt.Errorf("create bucket %q: %w", bucketWAL, err)
	}
	return wb.Put(keyApplied, seqKey(seq))
}

// snapshot pairs the current overlay with a bbolt read transaction that
// holds nothing newer than it. The caller holds dbMu shared and must close
// the snapshot.
func (s *Store) snapshot() (*snap, error) {
	for {
		v := s.oview.Load()
		btx, err := s.db.Begin(false)
		if err != nil {
			return nil, err
		}
		at, err := applied(btx)
		if err != nil {
			_ = btx.Rollback()
			return nil, err
		}
		if at <= v.seq {
			return &snap{v: v, btx: btx}, nil
		}
		// A checkpoint of commits this oview predates landed in between.
		_ = btx.Rollback()
	}
}

func (sn *snap) close() { _ = sn.btx.Rollback() }

// Update runs fn in a write transaction and returns once its writes are
// durable (logged and synced). Its events go to the publisher right after,
// in commit order, from a goroutine of their own. If fn returns an error or
// panics, none of its writes are kept and Update returns that error.
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
	if s.testEnqueued != nil && r.flush == nil {
		s.testEnqueued()
	}
	return nil
}

// flush returns once everything committed before it was called is in the
// bbolt file, for what reads the file itself (backups, compaction, export).
func (s *Store) flush(ctx context.Context) error {
	for {
		r := &request{flush: &flushReq{}, res: make(chan error, 1)}
		if err := s.enqueue(ctx, r); err != nil {
			return err
		}
		var err error
		select {
		case err = <-r.res:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		if r.flush.wait == nil {
			return nil
		}
		select {
		case <-r.flush.wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !r.flush.again {
			return nil
		}
	}
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
	sn, err := s.snapshot()
	if err != nil {
		return fmt.Errorf("oview: %w", err)
	}
	defer sn.close()
	t := &tx{sn: sn}
	defer t.finish()
	return fn(t)
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
		if limit <= 0 || since >= head {
			return nil
		}
		return t.scanForward(tenantBucket(tenant), bucketEvents, nil, seqKey(since+1), nil, func(k string, v []byte) (bool, error) {
			var e inbox.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return false, fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64([]byte(k)), err)
			}
			e.TenantID = tenant
			events = append(events, e)
			return len(events) < limit, nil
		})
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
		err := t.scanForward(tenantBucket(tenant), bucketEvents, nil, nil, nil, func(k string, _ []byte) (bool, error) {
			if len(k) == 8 {
				oldest = binary.BigEndian.Uint64([]byte(k))
			}
			return false, nil
		})
		if err != nil || oldest != 0 {
			return err
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

// Close stops new Updates, lets the committer finish what is already queued,
// copies everything logged into the file and closes it. Later calls return
// the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.reqs)
		s.mu.Unlock()
		<-s.done
		close(s.pubq)
		<-s.pubDone
		s.ckptWG.Wait()
		var errs []error
		s.prepWG.Wait()
		select {
		case w := <-s.spare:
			if w != nil {
				errs = append(errs, w.close())
			}
		default:
		}
		if s.wal != nil {
			errs = append(errs, s.wal.close())
			if v := s.oview.Load(); v.size == 0 && len(v.frozen) == 0 && s.failed == nil && !s.testCrash.Load() {
				// Everything logged is in the file now.
				if segs, err := segments(s.path); err == nil {
					for _, sg := range segs {
						errs = append(errs, os.Remove(sg.name))
					}
				}
			}
		}
		s.dbMu.Lock()
		defer s.dbMu.Unlock()
		errs = append(errs, s.db.Close())
		if err := errors.Join(errs...); err != nil {
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
// whatever else is already queued so one log sync serves them all.
func (s *Store) committer() {
	batch := make([]*request, 0, s.max)
	yields := 0
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
				continue
			default:
			}
			// Writers that are running their unit of work ahead (see
			// Speculate) are moments from joining: yield to them a few
			// times rather than pay a log sync (kernel CPU) for a group of
			// one or two. No timer: nothing waits when nobody is coming.
			if yields >= maxYields || s.inflight.Load() == 0 {
				break drain
			}
			yields++
			runtime.Gosched()
		}
		yields = 0
		s.commit(batch)
		clear(batch) // let answered requests be collected
	}
	s.finalCheckpoint()
	close(s.ckptq)
	close(s.done) // not deferred: a committer lost to Goexit has a successor
}

// maxYields bounds how often the committer yields to writers about to
// join a group before it commits without them.
const maxYields = 3

// commit runs one batch as one group: every request on the same state, its
// writes in one buffer, logged with one sync. Each request's outcome is kept
// apart: its error goes to it alone, its events are published only if it
// succeeded and the group was logged.
func (s *Store) commit(batch []*request) {
	taken := batch[:0]
	var flushes []*request
	for _, r := range batch {
		if r.flush != nil {
			flushes = append(flushes, r)
			continue
		}
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			taken = append(taken, r)
		}
	}
	if len(taken) > 0 {
		s.group(taken)
	}
	for _, r := range flushes {
		s.answerFlush(r)
	}
	s.maybeCheckpoint()
}

func (s *Store) group(taken []*request) {
	if s.failed != nil {
		answerAll(taken, fmt.Errorf("store failed: %w", s.failed))
		return
	}
	start := time.Now()
	s.dbMu.RLock()
	sn, err := s.snapshot()
	if err != nil {
		s.dbMu.RUnlock()
		answerAll(taken, fmt.Errorf("begin: %w", err))
		return
	}
	finished := false
	defer func() {
		if finished {
			return
		}
		// A fn called runtime.Goexit (t.FailNow in a test, say), which cannot
		// be recovered: fail the batch and hand the queue to a new committer
		// before this goroutine dies.
		sn.close()
		s.dbMu.RUnlock()
		s.log.Error("bolt: update fn called runtime.Goexit", "batch", len(taken))
		answerAll(taken, errors.New("update fn exited its goroutine (runtime.Goexit)"))
		go s.committer()
	}()
	results := make([]error, len(taken))
	var events []inbox.Event
	w := newWbuf()
	seq := s.seq + 1
	s.ver.rotate(seq)
	for i, r := range taken {
		t := &tx{sn: sn, w: w, writable: true, ver: &s.ver, seq: seq, mark: len(w.undo)}
		if sp := r.spec; sp != nil && sp.gen == s.gen && s.ver.unchanged(sp.reads, sp.seq) {
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
		t.rollback()
	}
	finished = true
	sn.close()
	s.dbMu.RUnlock()
	if len(w.m) > 0 {
		l := sortedLayer(w.m)
		if err := s.wal.append(seq, l); err != nil {
			// What reached the disk is unknown: accept nothing more rather
			// than risk acknowledging on top of a broken log.
			s.failed = err
			s.log.Error("bolt: writing the log failed; the store accepts no more writes", "err", err, "batch", len(taken))
			answerAll(taken, fmt.Errorf("commit: %w", err))
			return
		}
		s.seq = seq
		s.viewMu.Lock()
		s.oview.Store(s.oview.Load().withLayer(l, seq))
		s.viewMu.Unlock()
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

// maybeCheckpoint freezes the overlay for the checkpointer when it is big
// or old enough and no checkpoint is running; when the overlay has grown
// far past that, it waits for the running one first.
func (s *Store) maybeCheckpoint() {
	if s.ckpt != nil {
		select {
		case <-s.ckpt.done:
			s.ckpt = nil
		default:
			if s.oview.Load().size < overlayLimit {
				return
			}
			<-s.ckpt.done
			s.ckpt = nil
		}
	}
	v := s.oview.Load()
	if v.size == 0 {
		return
	}
	if v.size >= checkpointEntries || time.Since(s.frozen) >= checkpointInterval {
		s.freeze()
	}
}

// freeze hands the active overlay to the checkpointer and starts a new log
// segment, so the old segments hold exactly what the checkpoint copies.
func (s *Store) freeze() {
	if s.failed != nil || s.ckpt != nil {
		return
	}
	all, err := segments(s.path)
	if err != nil {
		s.log.Error("bolt: list log segments", "err", err)
		return
	}
	var old []segment
	for _, sg := range all {
		if sg.n <= s.wal.n {
			old = append(old, sg)
		}
	}
	w := s.takeSpare(s.wal.n + 1)
	if w == nil {
		return
	}
	s.prepare(w.n + 1)
	if err := s.wal.close(); err != nil {
		s.log.Warn("bolt: close log segment", "err", err)
	}
	s.wal = w
	s.frozen = time.Now()
	s.viewMu.Lock()
	v := s.oview.Load()
	s.oview.Store(&oview{frozen: v.active, seq: v.seq})
	s.viewMu.Unlock()
	s.ckpt = &checkpoint{layers: plain(v.active), seq: v.seq, segs: old, done: make(chan struct{})}
	s.ckptq <- s.ckpt
}

// prepare makes log segment n ahead of time, in the background.
func (s *Store) prepare(n uint64) {
	s.prepWG.Add(1)
	go func() {
		defer s.prepWG.Done()
		w, err := openSegment(s.path, s.id, n)
		if err != nil {
			s.log.Warn("bolt: make the next log segment ahead", "err", err)
			w = nil
		}
		s.spare <- w
	}()
}

// takeSpare returns segment n, made ahead of time by prepare (waiting for
// it if it is still being made), or nil when that failed and making it now
// fails too.
func (s *Store) takeSpare(n uint64) *wal {
	w := <-s.spare
	if w != nil && w.n == n {
		return w
	}
	if w != nil {
		_ = w.close()
		_ = os.Remove(segmentName(s.path, w.n))
	}
	w, err := openSegment(s.path, s.id, n)
	if err != nil {
		s.log.Error("bolt: start a log segment", "err", err)
		// Nothing is lost: the current segment goes on; try again later.
		s.prepare(n)
		return nil
	}
	return w
}

// answerFlush answers a flush request: nothing to wait for when the overlay
// is empty, else the checkpoint that will hold what is logged now.
func (s *Store) answerFlush(r *request) {
	if s.failed != nil {
		r.res <- fmt.Errorf("store failed: %w", s.failed)
		return
	}
	if s.ckpt != nil {
		select {
		case <-s.ckpt.done:
			s.ckpt = nil
		default:
			r.flush.wait, r.flush.again = s.ckpt.done, true
			r.res <- nil
			return
		}
	}
	if s.oview.Load().size == 0 {
		r.res <- nil
		return
	}
	s.freeze()
	if s.ckpt != nil {
		r.flush.wait = s.ckpt.done
	}
	r.res <- nil
}

// finalCheckpoint runs when the queue is closed: everything logged goes
// into the file, so Close can remove the log.
func (s *Store) finalCheckpoint() {
	if s.testCrash.Load() {
		return
	}
	if s.ckpt != nil {
		<-s.ckpt.done
		s.ckpt = nil
	}
	if s.oview.Load().size > 0 {
		s.freeze()
		if s.ckpt != nil {
			<-s.ckpt.done
			s.ckpt = nil
		}
	}
}

// checkpointer copies frozen layers into bbolt, one checkpoint at a time,
// retrying while the disk refuses (the log still holds everything). While
// idle it asks the committer for a checkpoint now and then, so writes that
// stopped coming still reach the file.
func (s *Store) checkpointer() {
	defer s.ckptWG.Done()
	tick := time.NewTicker(checkpointInterval)
	defer tick.Stop()
	for {
		select {
		case c, ok := <-s.ckptq:
			if !ok {
				return
			}
			s.runCheckpoint(c)

		case <-tick.C:
			if v := s.oview.Load(); v.size > 0 && len(v.frozen) == 0 {
				go s.nudge()
			}
		}
	}
}

// nudge queues a flush without waiting for it.
func (s *Store) nudge() {
	r := &request{flush: &flushReq{}, res: make(chan error, 1)}
	_ = s.enqueue(context.Background(), r)
}

func (s *Store) runCheckpoint(c *checkpoint) {
	start := time.Now()
	flat := flatten(c.layers)
	flatD := time.Since(start)
	// Readers search one flat layer instead of many until the copy is done.
	s.viewMu.Lock()
	if v := s.oview.Load(); len(v.frozen) > 1 {
		s.oview.Store(&oview{active: v.active, frozen: []olayer{newOlayer(flat)}, seq: v.seq, size: v.size})
	}
	s.viewMu.Unlock()
	for {
		err := s.writeCheckpoint(flat, c.seq)
		if err == nil {
			break
		}
		if s.isClosed() {
			// Closing on a disk that refuses: leave the log as it is (the
			// next start replays it) rather than hold Close up for ever.
			s.log.Error("bolt: checkpoint failed while closing; the log keeps the writes for the next start", "err", err, "through", c.seq)
			close(c.done)
			return
		}
		s.log.Error("bolt: checkpoint failed; the log keeps the writes, retrying", "err", err, "through", c.seq)
		time.Sleep(time.Second)
	}
	s.viewMu.Lock()
	v := s.oview.Load()
	s.oview.Store(&oview{active: v.active, seq: v.seq, size: v.size})
	s.viewMu.Unlock()
	s.log.Debug("bolt: checkpoint", "entries", len(flat), "through", c.seq, "flatten", flatD, "took", time.Since(start))
	if s.ckptC != nil {
		s.ckptC(time.Since(start), len(flat))
	}
	for _, sg := range c.segs {
		if err := os.Remove(sg.name); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("bolt: remove checkpointed log segment", "err", err, "segment", sg.name)
		}
	}
	close(c.done)
}

func (s *Store) writeCheckpoint(l layer, seq uint64) error {
	if s.testCheckpointFails.Load() {
		return errors.New("checkpoint refused (test)")
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.Update(func(btx *bbolt.Tx) error { return applyLayer(btx, l, seq) })
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
