package bolt

import (
	"context"
	"fmt"
	"io"

	bbolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole database to w, as one bbolt
// file, from a single read transaction: commits go on while it runs and
// none of them shows in the copy. It returns the bytes written. Ending ctx
// stops the copy at the next write with ctx's error.
//
// The read transaction keeps the pages it sees from being reused, so the
// file may grow a little under heavy writing while a backup runs; and a
// commit that needs to grow the file's memory map waits for it to end.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.isClosed() {
		return 0, ErrClosed
	}
	var n int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

// ctxWriter fails writes once its context has ended.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
