package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func openDSN(t testing.TB, dsn string, pub inbox.Publisher) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, Options{Publisher: pub, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStoreContract runs the acceptance suite every inbox.Store passes.
func TestStoreContract(t *testing.T) {
	var dsns storetest.PerTest[string]
	storetest.Run(t, func(t *testing.T, pub inbox.Publisher) inbox.Store {
		return openDSN(t, dsns.Get(t, func() string { return pgtest.DSN(t) }), pub)
	})
}

// Processes starting at once must not apply a migration twice, and a
// reopened database has nothing left to apply.
func TestMigrationsApplyOnceUnderConcurrentOpens(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), dsn, Options{})
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := openDSN(t, dsn, nil)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, max int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || max != ms[len(ms)-1].version {
		t.Fatalf("schema_migrations has %d rows up to %d, want %d up to %d", n, max, len(ms), ms[len(ms)-1].version)
	}
	// A database from a newer binary is refused rather than misread.
	if _, err := s.pool.Exec(context.Background(), "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dsn, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema = %v", err)
	}
}

func TestOpenErrorsKeepThePasswordOut(t *testing.T) {
	for _, dsn := range []string{
		"postgres://onebox:s3cretpw@127.0.0.1:1/onebox?sslmode=disable&connect_timeout=2",
		"postgres://onebox:s3cretpw@[::1:bad/onebox",
	} {
		_, err := Open(context.Background(), dsn, Options{})
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

// Erasure turns logged events into tombstones, then Compact rewrites the
// tables so the erased bytes are gone from them.
func TestRewriteEventsAndCompact(t *testing.T) {
	s := openDSN(t, pgtest.DSN(t), nil)
	ctx := context.Background()
	update := func(fn func(inbox.Tx) error) {
		t.Helper()
		if err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx inbox.Tx) error {
		for i := 1; i <= 7; i++ {
			data := fmt.Sprintf(`{"i":%d}`, i)
			if i%2 == 0 {
				data = `{"secret":"erase-me"}`
			}
			if err := tx.Append("a", &inbox.Event{Type: "x", Data: json.RawMessage(data)}); err != nil {
				return err
			}
		}
		return nil
	})
	var visited []uint64
	from := uint64(1)
	for from != 0 {
		update(func(tx inbox.Tx) error {
			rw, ok := tx.(inbox.EventRewriter)
			if !ok {
				return errors.New("the postgres Tx is not an EventRewriter")
			}
			var err error
			from, err = rw.RewriteEvents("a", from, 3, func(e *inbox.Event) bool {
				visited = append(visited, e.Seq)
				if strings.Contains(string(e.Data), "erase-me") {
					e.Type, e.Data = inbox.EventTombstone, json.RawMessage(`{}`)
					return true
				}
				return false
			})
			return err
		})
	}
	if fmt.Sprint(visited) != "[1 2 3 4 5 6 7]" {
		t.Fatalf("visited %v", visited)
	}
	events, head, err := s.Events(ctx, "a", 0, 100)
	if err != nil || head != 7 || len(events) != 7 {
		t.Fatalf("Events = %d, %d, %v", len(events), head, err)
	}
	for _, e := range events {
		if strings.Contains(string(e.Data), "erase-me") || (e.Seq%2 == 0) != (e.Type == inbox.EventTombstone) {
			t.Fatalf("event %d = %s %s", e.Seq, e.Type, e.Data)
		}
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if events, _, _ := s.Events(ctx, "a", 0, 100); len(events) != 7 {
		t.Fatalf("after Compact: %d events", len(events))
	}
}

// Heads answers for many tenants in one question, each as Events does,
// and leaves out tenants that never wrote.
func TestHeadsOfManyTenants(t *testing.T) {
	s := openDSN(t, pgtest.DSN(t), nil)
	ctx := context.Background()
	want := map[string]uint64{"h-a": 3, "h-b": 1, "h-c": 5}
	for tenant, n := range want {
		err := s.Update(ctx, func(tx inbox.Tx) error {
			for range n {
				if err := tx.Append(tenant, &inbox.Event{Type: "x", Data: json.RawMessage(`{}`)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Heads(ctx, []string{"h-a", "h-b", "h-c", "h-never"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("Heads = %v, want %v (no entry for a tenant that never wrote)", got, want)
	}
	for tenant, n := range want {
		_, head, err := s.Events(ctx, tenant, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got[tenant] != n || head != n {
			t.Errorf("tenant %s: Heads says %d, Events says %d, want %d", tenant, got[tenant], head, n)
		}
	}
	if got, err := s.Heads(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Heads(nil) = %v, %v; want an empty answer", got, err)
	}
}
