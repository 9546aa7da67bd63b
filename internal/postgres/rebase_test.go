package postgres

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
)

var (
	homes = inbox.Collection{Name: "homes"}
	notes = inbox.Collection{Tenant: "t1", Name: "notes"}
)

// Writers that look up a global record and then write one tenant (a
// webhook finding its channel's tenant) queue on the tenant's lock instead
// of conflicting: nearly none runs twice.
func TestGlobalReadThenTenantDoesNotRetry(t *testing.T) {
	ctx := context.Background()
	s := openDSN(t, pgtest.DSN(t), nil)
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(homes, "ch1", "t1") }); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				err := s.Update(ctx, func(tx inbox.Tx) error {
					var tenant string
					if err := tx.Get(homes, "ch1", &tenant); err != nil {
						return err
					}
					return tx.Append(tenant, &inbox.Event{Type: "message.created", Data: []byte(`{}`)})
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	_, head, err := s.Events(ctx, "t1", 0, 0)
	if err != nil || head != writers*each {
		t.Fatalf("head %d %v, want %d", head, err, writers*each)
	}
	if r := s.Stats().Retries - before.Retries; r > writers*each/10 {
		t.Fatalf("%d retries for %d updates", r, writers*each)
	}
}

// When the global record an Update read changes while it waits for the
// tenant's lock, it runs again and acts on the new value.
func TestGlobalReadChangedWhileWaitingRunsAgain(t *testing.T) {
	ctx := context.Background()
	s := openDSN(t, pgtest.DSN(t), nil)
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(homes, "ch1", "old") }); err != nil {
		t.Fatal(err)
	}
	// A holds t1's lock until released.
	holding, release := make(chan struct{}), make(chan struct{})
	aDone := make(chan error, 1)
	go func() {
		aDone <- s.Update(ctx, func(tx inbox.Tx) error {
			if err := tx.Put(notes, "a", "a"); err != nil {
				return err
			}
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	// B reads the record, then waits for t1.
	var runs atomic.Int32
	firstRead := make(chan struct{})
	bDone := make(chan error, 1)
	var wrote string
	go func() {
		bDone <- s.Update(ctx, func(tx inbox.Tx) error {
			var v string
			if err := tx.Get(homes, "ch1", &v); err != nil {
				return err
			}
			if runs.Add(1) == 1 {
				close(firstRead)
			}
			wrote = v
			return tx.Put(notes, "b", v)
		})
	}()
	<-firstRead
	// The record changes behind B's back (a global write takes no lock).
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(homes, "ch1", "new") }); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	var got string
	if err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(notes, "b", &got) }); err != nil {
		t.Fatal(err)
	}
	if got != "new" || wrote != "new" || runs.Load() != 2 {
		t.Fatalf("B wrote %q after %d runs, want \"new\" after 2", got, runs.Load())
	}
	if err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(notes, "a", nil) }); errors.Is(err, inbox.ErrNotFound) {
		t.Fatal("A's write is gone")
	}
}
