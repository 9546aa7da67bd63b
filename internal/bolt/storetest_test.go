package bolt_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/storetest"
)

// TestStoreContract runs the acceptance suite every inbox.Store passes.
func TestStoreContract(t *testing.T) {
	var paths storetest.PerTest[string]
	storetest.Run(t, func(t *testing.T, pub inbox.Publisher) inbox.Store {
		path := paths.Get(t, func() string { return filepath.Join(t.TempDir(), "onebox.db") })
		s, err := bolt.Open(path, bolt.Options{Publisher: pub, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
