package bolt

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bbolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole database to w, as one bbolt
// file, from a single read transaction: commits go on while it runs and
// none of them shows in the copy. It returns the bytes written. Ending ctx
// stops the copy at the next write with ctx's error.
//
// A read transaction keeps the pages it sees from being reused, and a
// commit that needs to grow the file's memory map waits for every read
// transaction to end. So the copy is first spooled to a file beside the
// database, at the disk's speed, and only then sent to w: however slowly
// (or not at all) the receiver reads, the store is held up for no longer
// than a local copy takes. The spool file is unlinked as soon as it is
// open, so nothing is left behind if the process dies; it needs free space
// the size of the database while the backup runs.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// The copy is of the file, so first everything logged goes into it.
	if err := s.flush(ctx); err != nil {
		return 0, fmt.Errorf("backup: checkpoint: %w", err)
	}
	spool, err := os.CreateTemp(filepath.Dir(s.path), ".backup-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("backup: spool file: %w", err)
	}
	defer spool.Close()
	if err := os.Remove(spool.Name()); err != nil {
		return 0, fmt.Errorf("backup: unlink spool file: %w", err)
	}
	size, err := s.spoolSnapshot(ctx, spool)
	if err != nil {
		return 0, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("backup: rewind spool file: %w", err)
	}
	n, err := io.Copy(ctxWriter{ctx: ctx, w: w}, spool)
	if err != nil {
		return n, fmt.Errorf("backup: send: %w", err)
	}
	if n != size {
		return n, fmt.Errorf("backup: sent %d of %d bytes", n, size)
	}
	return n, nil
}

// spoolSnapshot writes the database as one read transaction sees it to f.
func (s *Store) spoolSnapshot(ctx context.Context, f *os.File) (int64, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.isClosed() {
		return 0, ErrClosed
	}
	if s.testSnapshotted != nil {
		defer s.testSnapshotted()
	}
	var n int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: f})
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
