package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onebox/onebox/internal/inbox"

	bbolt "go.etcd.io/bbolt"
)

// compactTxSize bounds each copy transaction of Compact.
const compactTxSize = 16 << 20

// Compact rewrites the database into a fresh file and puts it in place of
// the old one. bbolt keeps deleted records in freed pages until they are
// reused, so erasing data is only final once those pages are gone from
// every file: the copy holds live records only, and the old file is
// removed. Reads and commits wait while it runs; queued Updates resume on
// the new file.
func (s *Store) Compact(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// What was deleted must be deleted in the file before it is copied.
	if err := s.flush(ctx); err != nil {
		return fmt.Errorf("compact: checkpoint: %w", err)
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	tmp := s.path + ".compact"
	_ = os.Remove(tmp) // left by a crash during an earlier run
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: s.bopts.Timeout, NoFreelistSync: true, FreelistType: s.bopts.FreelistType})
	if err != nil {
		return fmt.Errorf("compact: create copy: %w", err)
	}
	if err := bbolt.Compact(dst, s.db, compactTxSize); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("compact: copy: %w", err)
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("compact: sync copy: %w", err)
	}
	if err := dst.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("compact: close copy: %w", err)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("compact: close database: %w", err)
	}
	// From here the store must end with an open db whatever happens, or
	// every later call would use a closed one.
	renameErr := os.Rename(tmp, s.path)
	if renameErr == nil {
		renameErr = syncDir(filepath.Dir(s.path))
	}
	db, err := bbolt.Open(s.path, 0o600, s.bopts)
	if err != nil {
		return fmt.Errorf("compact: reopen database: %w", errors.Join(err, renameErr))
	}
	s.db = db
	s.gen++
	s.ver = versions{}
	if renameErr != nil {
		return fmt.Errorf("compact: replace database: %w", renameErr)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RewriteEvents visits up to limit events of tenant from seq from on and
// stores again those fn changed, keeping their seq. It returns the seq to
// continue from, 0 once the log's end was reached. Erasure uses it to turn
// events that carried erased data into tombstones.
func (t *tx) RewriteEvents(tenant string, from uint64, limit int, fn func(e *inbox.Event) bool) (uint64, error) {
	if err := t.check(true); err != nil {
		return 0, err
	}
	top := tenantBucket(tenant)
	type change struct {
		key, raw []byte
	}
	var changes []change
	next := uint64(0)
	n := 0
	err := t.scanForward(top, bucketEvents, nil, seqKey(from), nil, func(k string, v []byte) (bool, error) {
		if n == limit {
			next = binary.BigEndian.Uint64([]byte(k))
			return false, nil
		}
		n++
		var e inbox.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64([]byte(k)), err)
		}
		if fn(&e) {
			changes = append(changes, change{key: []byte(k), raw: e.AppendJSON(nil)})
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	for _, ch := range changes {
		if err := t.put(top, bucketEvents, ch.key, ch.raw); err != nil {
			return 0, fmt.Errorf("rewrite event: %w", err)
		}
	}
	return next, nil
}
