package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ImportSource hands Import the rows of another store. Each function calls
// emit once per row, in any order; emit's slices may be reused after it
// returns. A nil function has no rows.
type ImportSource struct {
	Records func(emit func(tenant, coll string, key, val []byte) error) error
	Events  func(emit func(tenant string, seq uint64, data []byte) error) error
	Heads   func(emit func(tenant string, head uint64) error) error
}

// Summary counts what a database holds, for checking a copy against its
// source.
type Summary struct {
	Records int64
	Events  int64
	// Logs are each tenant's head and the events it still holds.
	Logs map[string]LogSummary
}

// LogSummary is one tenant's log.
type LogSummary struct {
	Head   uint64
	Events int64
}

// ErrNotEmpty is returned by Import when the database already holds data.
var ErrNotEmpty = errors.New("the database already holds OneBox data")

// importBatch is how many rows go in one COPY.
const importBatch = 5000

// Import copies src into the database in one transaction, which must find
// it empty: records, events with their seqs and heads exactly as given, so
// a tenant's log goes on from where it was. The tables are locked for the
// whole copy, so a server started on the database meanwhile waits instead
// of writing into a half-copied state. Nothing is kept if anything fails.
func (s *Store) Import(ctx context.Context, src ImportSource) (Summary, error) {
	if err := s.enter(); err != nil {
		return Summary{}, err
	}
	defer s.inflight.Done()
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return Summary{}, fmt.Errorf("import: begin: %w", err)
	}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := ptx.Exec(ctx, "LOCK TABLE kv, events, heads IN ACCESS EXCLUSIVE MODE"); err != nil {
		return Summary{}, fmt.Errorf("import: lock tables: %w", err)
	}
	var found bool
	if err := ptx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kv) OR EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM heads)`).Scan(&found); err != nil {
		return Summary{}, fmt.Errorf("import: check the database is empty: %w", err)
	}
	if found {
		return Summary{}, ErrNotEmpty
	}
	if src.Records != nil {
		c := &copier{ctx: ctx, tx: ptx, table: "kv", cols: []string{"tenant", "coll", "key", "val"}}
		err := src.Records(func(tenant, coll string, key, val []byte) error {
			return c.add(tenant, coll, bytesCopy(key), bytesCopy(val))
		})
		if err = c.finish(err); err != nil {
			return Summary{}, fmt.Errorf("import records: %w", err)
		}
	}
	if src.Events != nil {
		c := &copier{ctx: ctx, tx: ptx, table: "events", cols: []string{"tenant", "seq", "data"}}
		err := src.Events(func(tenant string, seq uint64, data []byte) error {
			if seq == 0 || seq > 1<<63-1 {
				return fmt.Errorf("tenant %q: event seq %d out of range", tenant, seq)
			}
			return c.add(tenant, int64(seq), bytesCopy(data))
		})
		if err = c.finish(err); err != nil {
			return Summary{}, fmt.Errorf("import events: %w", err)
		}
	}
	if src.Heads != nil {
		c := &copier{ctx: ctx, tx: ptx, table: "heads", cols: []string{"tenant", "head"}}
		err := src.Heads(func(tenant string, head uint64) error {
			if head > 1<<63-1 {
				return fmt.Errorf("tenant %q: head %d out of range", tenant, head)
			}
			return c.add(tenant, int64(head))
		})
		if err = c.finish(err); err != nil {
			return Summary{}, fmt.Errorf("import heads: %w", err)
		}
	}
	// A log past its head would hand out a seq twice.
	var bad string
	err = ptx.QueryRow(ctx, `SELECT e.tenant FROM events e LEFT JOIN heads h ON h.tenant = e.tenant
		WHERE h.head IS NULL OR e.seq > h.head LIMIT 1`).Scan(&bad)
	switch {
	case err == nil:
		return Summary{}, fmt.Errorf("import: tenant %q has events past its head", bad)
	case !errors.Is(err, pgx.ErrNoRows):
		return Summary{}, fmt.Errorf("import: check heads: %w", err)
	}
	sum, err := summarize(ctx, ptx)
	if err != nil {
		return Summary{}, fmt.Errorf("import: %w", err)
	}
	if err := ptx.Commit(ctx); err != nil {
		return Summary{}, fmt.Errorf("import: commit: %w", err)
	}
	return sum, nil
}

// Summarize counts what the database holds, from one snapshot.
func (s *Store) Summarize(ctx context.Context) (Summary, error) {
	if err := s.enter(); err != nil {
		return Summary{}, err
	}
	defer s.inflight.Done()
	ptx, err := s.reads.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Summary{}, fmt.Errorf("summarize: begin: %w", err)
	}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	sum, err := summarize(ctx, ptx)
	if err != nil {
		return Summary{}, fmt.Errorf("summarize: %w", err)
	}
	return sum, nil
}

func summarize(ctx context.Context, q pgx.Tx) (Summary, error) {
	sum := Summary{Logs: map[string]LogSummary{}}
	if err := q.QueryRow(ctx, "SELECT count(*) FROM kv").Scan(&sum.Records); err != nil {
		return sum, fmt.Errorf("count records: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT h.tenant, h.head, (SELECT count(*) FROM events e WHERE e.tenant = h.tenant) FROM heads h`)
	if err != nil {
		return sum, fmt.Errorf("count events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			tenant string
			head   int64
			n      int64
		)
		if err := rows.Scan(&tenant, &head, &n); err != nil {
			return sum, fmt.Errorf("count events: %w", err)
		}
		sum.Logs[tenant] = LogSummary{Head: uint64(head), Events: n}
		sum.Events += n
	}
	if err := rows.Err(); err != nil {
		return sum, fmt.Errorf("count events: %w", err)
	}
	var all int64
	if err := q.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&all); err != nil {
		return sum, fmt.Errorf("count events: %w", err)
	}
	if all != sum.Events {
		return sum, fmt.Errorf("%d events belong to no tenant's head", all-sum.Events)
	}
	return sum, nil
}

// copier sends rows to one table in COPY batches.
type copier struct {
	ctx   context.Context
	tx    pgx.Tx
	table string
	cols  []string
	rows  [][]any
}

func (c *copier) add(vals ...any) error {
	c.rows = append(c.rows, vals)
	if len(c.rows) >= importBatch {
		return c.flush()
	}
	return nil
}

func (c *copier) flush() error {
	if len(c.rows) == 0 {
		return nil
	}
	n, err := c.tx.CopyFrom(c.ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows))
	if err != nil {
		return err
	}
	if n != int64(len(c.rows)) {
		return fmt.Errorf("copied %d rows of %d", n, len(c.rows))
	}
	c.rows = c.rows[:0]
	return nil
}

// finish sends the last batch unless the source failed.
func (c *copier) finish(srcErr error) error {
	if srcErr != nil {
		return srcErr
	}
	return c.flush()
}

func bytesCopy(b []byte) []byte { return append([]byte{}, b...) }
