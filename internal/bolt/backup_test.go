package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// TestBackupIsConsistentUnderWrites copies the store while writers append
// to their tenants' logs and checks the copy opens as a store whose logs
// run 1..head with each event's record present.
func TestBackupIsConsistentUnderWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "onebox.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	const writers = 4
	var stop atomic.Bool
	var wg sync.WaitGroup
	var written atomic.Int64
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := fmt.Sprintf("t%d", i)
			c := inbox.Collection{Tenant: tenant, Name: "notes"}
			for j := 0; !stop.Load() || j < 50; j++ {
				k := fmt.Sprintf("n%06d", j)
				err := s.Update(ctx, func(tx inbox.Tx) error {
					if err := tx.Put(c, k, j); err != nil {
						return err
					}
					return tx.Append(tenant, &inbox.Event{Type: "note.created", Data: []byte(`"` + k + `"`)})
				})
				if err != nil {
					errs <- err
					return
				}
				written.Add(1)
			}
		}()
	}
	// Let some writes land first so the copy is taken mid-stream.
	for written.Load() < 40 {
		if len(errs) > 0 {
			break
		}
	}
	f, err := os.Create(filepath.Join(dir, "backup.db"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(ctx, f)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("write: %v", err)
	}
	if fi, _ := os.Stat(f.Name()); fi.Size() != n {
		t.Fatalf("backup wrote %d bytes, file has %d", n, fi.Size())
	}

	b, err := Open(f.Name(), Options{})
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer b.Close()
	for i := range writers {
		tenant := fmt.Sprintf("t%d", i)
		evs, head, err := b.Events(ctx, tenant, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(evs)) != head {
			t.Fatalf("%s: %d events, head %d", tenant, len(evs), head)
		}
		for j, e := range evs {
			if e.Seq != uint64(j+1) {
				t.Fatalf("%s: event %d has seq %d", tenant, j, e.Seq)
			}
			key := fmt.Sprintf("n%06d", j)
			err := b.View(ctx, func(tx inbox.Tx) error {
				var v int
				return tx.Get(inbox.Collection{Tenant: tenant, Name: "notes"}, key, &v)
			})
			if err != nil {
				t.Fatalf("%s: record of event %d: %v", tenant, e.Seq, err)
			}
		}
		// Nothing beyond the head: the record after it was written later.
		err = b.View(ctx, func(tx inbox.Tx) error {
			var v int
			return tx.Get(inbox.Collection{Tenant: tenant, Name: "notes"}, fmt.Sprintf("n%06d", head), &v)
		})
		if !errors.Is(err, inbox.ErrNotFound) {
			t.Fatalf("%s: record past head %d: %v, want not found", tenant, head, err)
		}
	}
}

func TestBackupStopsWithContext(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "onebox.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Backup(ctx, discard{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("backup with an ended context: %v", err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// blockingWriter takes nothing until released, as a client that stopped
// reading its download.
type blockingWriter struct {
	release chan struct{}
	n       atomic.Int64
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.n.Add(int64(len(p)))
	return len(p), nil
}

// TestStalledBackupDoesNotHoldUpCommits: a backup whose receiver stops
// reading must not keep its read transaction, or every commit that grows
// the memory map would wait for the receiver. Writes that grow the file
// many times over go through while the receiver is stalled, the backup
// then completes in full, and no spool file is left in the directory.
func TestStalledBackupDoesNotHoldUpCommits(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "onebox.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c := inbox.Collection{Tenant: "t", Name: "blobs"}
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, "first", "x") }); err != nil {
		t.Fatal(err)
	}
	snapshotted := make(chan struct{})
	s.testSnapshotted = func() { close(snapshotted) }
	w := &blockingWriter{release: make(chan struct{})}
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := s.Backup(ctx, w)
		done <- result{n, err}
	}()
	select {
	case <-snapshotted:
	case r := <-done:
		t.Fatalf("backup ended before its receiver read anything: %d bytes, %v", r.n, r.err)
	}
	before, err := os.Stat(filepath.Join(dir, "onebox.db"))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 256<<10)
	for i := range 64 { // 16 MiB: the memory map is remapped several times
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.Update(wctx, func(tx inbox.Tx) error { return tx.Put(c, fmt.Sprintf("b%03d", i), big) })
		cancel()
		if err != nil {
			t.Fatalf("write %d while the backup's receiver is stalled: %v", i, err)
		}
	}
	// Writes reach the file at checkpoints; this one grows the map.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.flush(fctx); err != nil {
		t.Fatalf("checkpoint while the backup's receiver is stalled: %v", err)
	}
	after, err := os.Stat(filepath.Join(dir, "onebox.db"))
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() < before.Size()+16<<20 {
		t.Fatalf("file grew from %d to %d bytes, want 16 MiB more (the test must grow the map)", before.Size(), after.Size())
	}
	close(w.release)
	r := <-done
	if r.err != nil {
		t.Fatalf("backup: %v", r.err)
	}
	if r.n <= 0 || r.n != w.n.Load() {
		t.Fatalf("backup says %d bytes, receiver got %d", r.n, w.n.Load())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "onebox.db" && !strings.HasPrefix(e.Name(), "onebox.db.wal-") {
			t.Errorf("left in the data directory: %s", e.Name())
		}
	}
}
