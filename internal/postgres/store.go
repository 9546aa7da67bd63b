// Package postgres is the PostgreSQL implementation of inbox.Store, for
// running several OneBox processes on one shared database.
//
// Layout: table kv holds every collection (tenant "" for the global ones),
// keyed by bytea so keys order bytewise exactly as in bbolt; events holds
// each tenant's log and heads its last seq. The schema is embedded as
// numbered migrations applied at Open.
//
// Isolation. bbolt has one writer, so an Update behaves as if Updates ran
// one at a time; here many run at once, in many processes. Every Update is a
// SERIALIZABLE transaction, which PostgreSQL guarantees to be equivalent to
// some one-at-a-time order, retried from the start when the server reports
// a serialization failure or deadlock. Retrying re-runs fn, which is why
// every fn in internal/inbox keeps its effects inside the Tx (or overwrites,
// never accumulates, what it hands back).
//
// Retries are correct but waste work when many writers hit one tenant, which
// is the common case (every change of a tenant writes its log head). So each
// Update also holds a session advisory lock per tenant it touches: taken
// before BEGIN when a tenant is the first thing fn touches (the snapshot is
// then fresh and the transaction cannot conflict with that tenant's earlier
// writers); when fn has only read global records before its first tenant
// (a webhook looks up its channel), waited for after rolling back, the
// transaction begun again and those records read again to check fn saw
// what the new snapshot holds (rebase); tried without waiting when fn
// reaches a tenant later still; and, on a retry, taken up front for every
// tenant the failed attempt touched. Locks
// are waited for only while holding none or, up front, in key order, so they
// cannot deadlock; SERIALIZABLE, not the locks, is what makes it correct.
//
// Events are published after commit and before the tenant's lock is
// released, so within one process each tenant's events reach the Publisher
// in seq order; across processes the hub's gap filling covers the rest.
//
// Backups are the operator's pg_dump; there is no Backup method.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/onebox/onebox/internal/inbox"
)

var (
	_ inbox.Store      = (*Store)(nil)
	_ inbox.HeadReader = (*Store)(nil)
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("store closed")

// Options configures a Store. The zero value is usable.
type Options struct {
	// Publisher receives committed events; may be nil.
	Publisher inbox.Publisher
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MaxConns caps the writers' connections (default 12). Reads (View,
	// Events, Oldest) have a pool of their own, half that size (at least
	// 2), so a burst of writers queued on one tenant never starves them.
	// Size PostgreSQL's max_connections for 1.5 * MaxConns per process.
	MaxConns int32
	// MaxAttempts caps how often one Update runs after serialization
	// failures before giving up (default 50).
	MaxAttempts int
	// OnCommit, when set, is called after every committed Update with the
	// time its transaction took, from its first statement to the end of
	// COMMIT, and batch 1 (the same signature as internal/bolt's, whose
	// commits carry many Updates). It must be quick.
	OnCommit func(d time.Duration, batch int)
}

// Store is an inbox.Store on a PostgreSQL database. Its methods are safe
// for concurrent use, but must not be called from inside an Update or View
// fn (the fn would wait on a connection its own caller holds).
type Store struct {
	pool     *pgxpool.Pool // writers (Update, Compact)
	reads    *pgxpool.Pool // View, Events, Oldest
	pub      inbox.Publisher
	log      *slog.Logger
	attempts int
	onCommit func(time.Duration, int)

	mu       sync.RWMutex // guards closed and inflight.Add
	closed   bool
	inflight sync.WaitGroup

	pubq    chan []inbox.Event
	pubDone chan struct{}

	updates, retries atomic.Int64

	closeOnce sync.Once
}

// Stats counts Updates that committed or failed, and the extra runs that
// serialization failures and contended tenant locks cost them.
type Stats struct {
	Updates int64
	Retries int64
}

// Stats returns the counts so far.
func (s *Store) Stats() Stats {
	return Stats{Updates: s.updates.Load(), Retries: s.retries.Load()}
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string), applies pending migrations and returns the store.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("open postgres store: cannot parse the connection string")
	}
	writers := opts.MaxConns
	if writers <= 0 {
		writers = 12
	}
	cfg.MaxConns = writers
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	rcfg := cfg.Copy()
	rcfg.MaxConns = max(2, writers/2)
	reads, err := pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	closeAll := func() { pool.Close(); reads.Close() }
	if err := pool.Ping(ctx); err != nil {
		closeAll()
		return nil, fmt.Errorf("open postgres store: connect to %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	if err := migrate(ctx, pool); err != nil {
		closeAll()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	s := &Store{
		pool:     pool,
		reads:    reads,
		pub:      opts.Publisher,
		log:      opts.Logger,
		attempts: opts.MaxAttempts,
		onCommit: opts.OnCommit,
		pubq:     make(chan []inbox.Event, 1024),
		pubDone:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.attempts <= 0 {
		s.attempts = 50
	}
	go s.publisher()
	return s, nil
}

// enter registers a call so Close waits for it.
func (s *Store) enter() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

// Update runs fn in a SERIALIZABLE transaction and returns once it has
// committed. fn may run more than once: when PostgreSQL reports that the
// transaction could not be serialized, everything it did is rolled back and
// fn runs again on fresh data. If fn returns an error or panics, nothing it
// wrote is kept and Update returns that error.
func (s *Store) Update(ctx context.Context, fn func(inbox.Tx) error) error {
	if fn == nil {
		return errors.New("update: nil fn")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	healthy := false
	defer func() {
		if !healthy {
			// Its session may still hold locks or a transaction.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}()
	s.updates.Add(1)
	var lockFirst map[int32]bool
	for attempt := 1; ; attempt++ {
		t := &tx{s: s, ctx: ctx, conn: conn, writable: true, lockFirst: lockFirst}
		retry, err := s.attempt(t, fn)
		healthy = t.clean
		if err == nil || !retry || !t.clean {
			return err
		}
		if attempt >= s.attempts {
			return fmt.Errorf("update: gave up after %d attempts: %w", attempt, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
		lockFirst = t.touched
		s.retries.Add(1)
	}
}

// backoff spreads out writers that keep failing to serialize against each
// other. The first retries are immediate: they take their tenants' locks up
// front, which is usually enough.
func backoff(ctx context.Context, attempt int) error {
	if attempt < 3 {
		return ctx.Err()
	}
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt-3, 6)))
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt runs fn once and commits. retry reports a serialization failure
// (or a lock this attempt could not get) after which running fn again may
// succeed. t.clean reports that the session ended with no transaction and
// no locks, fit for reuse.
func (s *Store) attempt(t *tx, fn func(inbox.Tx) error) (retry bool, err error) {
	start := time.Now()
	if err := t.lockUpFront(); err != nil {
		return false, err
	}
	ferr := s.run(t, fn)
	t.done = true
	switch {
	case t.doomed:
		t.end(false)
		return true, errContended
	case t.err != nil && isRetryable(t.err):
		t.end(false)
		return true, t.err
	case ferr != nil:
		t.end(false)
		if isRetryable(ferr) {
			return true, ferr
		}
		return false, ferr
	case t.err != nil:
		// fn swallowed a failed statement: the transaction is aborted.
		t.end(false)
		return false, fmt.Errorf("update: %w", t.err)
	}
	if err := t.commit(); err != nil {
		t.end(false)
		return isRetryable(err), err
	}
	if s.onCommit != nil && t.begun {
		s.onCommit(time.Since(start), 1)
	}
	if s.pub != nil && len(t.events) > 0 {
		// Before the locks go, so the next writer of the tenant in this
		// process cannot publish ahead of us.
		s.pubq <- t.events
	}
	t.end(true)
	return false, nil
}

// run calls fn, turning a panic into an error.
func (s *Store) run(t *tx, fn func(inbox.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("postgres: update panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("update panicked: %v", p)
		}
	}()
	return fn(t)
}

// View runs fn in a read-only REPEATABLE READ transaction: one consistent
// snapshot, as a bbolt read transaction gives. Writes inside it fail.
func (s *Store) View(ctx context.Context, fn func(inbox.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	ptx, err := s.reads.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("view: begin: %w", err)
	}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	t := &tx{s: s, ctx: ctx, q: ptx, begun: true}
	defer func() { t.done = true }()
	if err := fn(t); err != nil {
		return err
	}
	return t.err
}

// Events returns up to limit events with seq > since, oldest first, and the
// tenant's head, from one snapshot. A limit <= 0 returns just the head.
func (s *Store) Events(ctx context.Context, tenant string, since uint64, limit int) ([]inbox.Event, uint64, error) {
	if err := s.enter(); err != nil {
		return nil, 0, err
	}
	defer s.inflight.Done()
	if limit < 0 {
		limit = 0
	}
	// One statement is one snapshot, so head and events agree.
	rows, err := s.reads.Query(ctx, `SELECT h.head, e.data FROM heads h
		LEFT JOIN LATERAL (SELECT data FROM events WHERE tenant = h.tenant AND seq > $2 ORDER BY seq LIMIT $3) e ON true
		WHERE h.tenant = $1`, tenant, int64(since), limit)
	if err != nil {
		return nil, 0, fmt.Errorf("events of tenant %q: %w", tenant, err)
	}
	defer rows.Close()
	var (
		events []inbox.Event
		head   int64
	)
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&head, &data); err != nil {
			return nil, 0, fmt.Errorf("events of tenant %q: %w", tenant, err)
		}
		if data == nil {
			continue
		}
		var e inbox.Event
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, 0, fmt.Errorf("events of tenant %q: decode: %w", tenant, err)
		}
		e.TenantID = tenant
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("events of tenant %q: %w", tenant, err)
	}
	return events, uint64(head), nil
}

// Oldest returns the first retained seq: head+1 when nothing is retained
// (1 for a tenant that never wrote), as in internal/bolt.
func (s *Store) Oldest(ctx context.Context, tenant string) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.inflight.Done()
	var oldest int64
	err := s.reads.QueryRow(ctx, `SELECT COALESCE(
		(SELECT seq FROM events WHERE tenant = $1 ORDER BY seq LIMIT 1),
		(SELECT head + 1 FROM heads WHERE tenant = $1),
		1)`, tenant).Scan(&oldest)
	if err != nil {
		return 0, fmt.Errorf("oldest event of tenant %q: %w", tenant, err)
	}
	return uint64(oldest), nil
}

// Heads reads the heads of many tenants in one statement. Tenants that
// never wrote have no row and are left out of the result.
func (s *Store) Heads(ctx context.Context, tenants []string) (map[string]uint64, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.inflight.Done()
	out := make(map[string]uint64, len(tenants))
	if len(tenants) == 0 {
		return out, nil
	}
	rows, err := s.reads.Query(ctx, `SELECT tenant, head FROM heads WHERE tenant = ANY($1)`, tenants)
	if err != nil {
		return nil, fmt.Errorf("heads of %d tenants: %w", len(tenants), err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			tenant string
			head   int64
		)
		if err := rows.Scan(&tenant, &head); err != nil {
			return nil, fmt.Errorf("heads of %d tenants: %w", len(tenants), err)
		}
		out[tenant] = uint64(head)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("heads of %d tenants: %w", len(tenants), err)
	}
	return out, nil
}

// Ping checks that the database answers, for readiness checks.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	if err := s.reads.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close stops new calls, waits for those running, hands the last events to
// the publisher and closes the pools. Later calls return nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.inflight.Wait()
		close(s.pubq)
		<-s.pubDone
		s.pool.Close()
		s.reads.Close()
	})
	return nil
}

// publisher hands committed events to the Publisher, in commit order.
func (s *Store) publisher() {
	defer close(s.pubDone)
	for events := range s.pubq {
		s.publish(events)
	}
}

// publish must not panic out of the publisher goroutine.
func (s *Store) publish(events []inbox.Event) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("postgres: publisher panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	s.pub.Publish(events)
}
