package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/onebox/onebox/internal/inbox"
)

// Compact makes erasure final in the database files. PostgreSQL keeps a
// deleted or overwritten row's bytes in its table and index pages until
// they are rewritten; VACUUM FULL copies the live rows of the tables into
// new files and removes the old ones. Like bbolt's compaction it takes the
// tables exclusively while it runs, so reads and writes of every process
// wait for it. Bytes may still sit in WAL segments until the server
// recycles them, and in the operator's backups and replicas.
func (s *Store) Compact(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	if _, err := s.pool.Exec(ctx, "VACUUM FULL kv, events, heads"); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// RewriteEvents visits up to limit events of tenant from seq from on and
// stores again those fn changed, keeping their seq. It returns the seq to
// continue from, 0 once the log's end was reached. Erasure and retention use
// it to turn events that carried erased data into tombstones.
func (t *tx) RewriteEvents(tenant string, from uint64, limit int, fn func(e *inbox.Event) bool) (uint64, error) {
	if err := t.enter(tenant, true); err != nil {
		return 0, err
	}
	if err := t.flush(); err != nil {
		return 0, err
	}
	if limit < 0 {
		limit = 0
	}
	rows, err := t.conn.Query(t.ctx, "SELECT seq, data FROM events WHERE tenant = $1 AND seq >= $2 ORDER BY seq LIMIT $3", tenant, int64(from), limit+1)
	if err != nil {
		return 0, t.fail(fmt.Errorf("read events: %w", err))
	}
	type stored struct {
		seq  int64
		data []byte
	}
	got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (stored, error) {
		var s stored
		err := row.Scan(&s.seq, &s.data)
		return s, err
	})
	if err != nil {
		return 0, t.fail(fmt.Errorf("read events: %w", err))
	}
	next := uint64(0)
	if len(got) > limit {
		next = uint64(got[limit].seq)
		got = got[:limit]
	}
	b := &pgx.Batch{}
	for _, st := range got {
		var e inbox.Event
		if err := json.Unmarshal(st.data, &e); err != nil {
			return 0, fmt.Errorf("decode event %d: %w", st.seq, err)
		}
		if fn(&e) {
			b.Queue("UPDATE events SET data = $3 WHERE tenant = $1 AND seq = $2", tenant, st.seq, e.AppendJSON(nil))
		}
	}
	if b.Len() > 0 {
		if err := t.conn.SendBatch(t.ctx, b).Close(); err != nil {
			return 0, t.fail(fmt.Errorf("rewrite events: %w", err))
		}
	}
	return next, nil
}
