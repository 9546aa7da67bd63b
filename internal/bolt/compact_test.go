package bolt

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/onebox/onebox/internal/inbox"
)

// TestCompactDropsFreedPages shows why erasure compacts: a deleted record
// stays readable in the file's freed pages until Compact rewrites it.
func TestCompactDropsFreedPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "onebox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c := inbox.Collection{Tenant: "t1", Name: "notes"}
	marker := "FREED-PAGE-MARKER-91d2"
	secret := strings.Repeat(marker, 400) // spans pages
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, "secret", secret) }); err != nil {
		t.Fatal(err)
	}
	// Checkpoint, so the record reaches the file's pages and then its
	// deletion leaves them freed.
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, "kept", "KEPT-RECORD") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Delete(c, "secret") }); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !fileHas(t, path, marker) {
		t.Fatal("the deleted record is not in the file before Compact; this test shows nothing")
	}

	// Compact under concurrent reads and writes.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				k := fmt.Sprintf("w%d-%d", i, j)
				if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, k, j) }); err != nil {
					errs <- err
					return
				}
				if err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(c, k, nil) }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("compact: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call: %v", err)
	}
	if fileHas(t, path, marker) {
		t.Error("the deleted record is still in the file after Compact")
	}
	segs, err := segments(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, sg := range segs {
		if fileHas(t, sg.name, marker) {
			t.Errorf("the deleted record is still in log segment %s after Compact", filepath.Base(sg.name))
		}
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("temporary copy left behind: %v", err)
	}
	var kept string
	if err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(c, "kept", &kept) }); err != nil || kept != "KEPT-RECORD" {
		t.Errorf("kept record after compact: %q, %v", kept, err)
	}
	n := 0
	if err := s.View(ctx, func(tx inbox.Tx) error {
		return tx.Scan(c, "w", "", false, func(string, []byte) (bool, error) { n++; return true, nil })
	}); err != nil || n != 80 {
		t.Errorf("writes around compact: %d of 80 kept, %v", n, err)
	}
}

func fileHas(t *testing.T, path, s string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(s))
}
