package inbox_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/postgres"
)

// Every way a session stops granting access is seen by SessionsValid, on
// both stores, and one session's end leaves the others valid.
func TestSessionsValid(t *testing.T) {
	open := map[string]func(t *testing.T) inbox.Store{
		"bolt": func(t *testing.T) inbox.Store {
			s, err := bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"postgres": func(t *testing.T) inbox.Store {
			s, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, open := range open {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			t.Cleanup(func() { store.Close() })
			testSessionsValid(t, store)
		})
	}
}

func testSessionsValid(t *testing.T, store inbox.Store) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	svc, err := inbox.NewService(inbox.Config{Store: store, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, adminKey, err := svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := svc.SignIn(ctx, adminKey, inbox.Device{})
	if err != nil {
		t.Fatal(err)
	}
	signIn := func(name string) (inbox.Principal, string) {
		t.Helper()
		_, _, raw, err := svc.CreateAgent(ctx, admin, inbox.NewAgent{Name: name, Role: inbox.RoleAgent})
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := svc.SignIn(ctx, raw, inbox.Device{})
		if err != nil {
			t.Fatal(err)
		}
		return p, raw
	}
	ana, anaKey := signIn("Ana")
	anaPhone, _, err := svc.SignIn(ctx, anaKey, inbox.Device{Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	ben, _ := signIn("Ben")
	cy, _ := signIn("Cy")
	dee, _ := signIn("Dee")

	forged := dee.Session
	forged.AgentID = admin.Agent.ID // a real hash claimed for another agent
	unknown := dee.Session
	unknown.Hash = "0000000000000000000000000000000000000000000000000000000000000000"

	sessions := []inbox.Session{admin.Session, ana.Session, anaPhone.Session, ben.Session, cy.Session, dee.Session, forged, unknown}
	check := func(step string, want ...bool) {
		t.Helper()
		got, err := svc.SessionsValid(ctx, sessions)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: session %d valid = %v, want %v (all: %v)", step, i, got[i], want[i], got)
			}
		}
	}
	check("at first", true, true, true, true, true, true, false, false)

	if err := svc.SignOut(ctx, ana); err != nil {
		t.Fatal(err)
	}
	check("after ana signed out on one device", true, false, true, true, true, true, false, false)

	keys, err := svc.ListKeys(ctx, admin, ben.Agent.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("ben's keys: %v %v", keys, err)
	}
	if err := svc.RevokeKey(ctx, admin, ben.Agent.ID, keys[0].ID); err != nil {
		t.Fatal(err)
	}
	check("after ben's key was revoked", true, false, true, false, true, true, false, false)

	if err := svc.DeactivateAgent(ctx, admin, cy.Agent.ID); err != nil {
		t.Fatal(err)
	}
	check("after cy was deactivated", true, false, true, false, false, true, false, false)

	if ok, err := svc.SessionValid(ctx, dee.Session); err != nil || !ok {
		t.Fatalf("dee's session: %v %v, want valid", ok, err)
	}
	mu.Lock()
	now = dee.Session.ExpiresAt
	mu.Unlock()
	if ok, err := svc.SessionValid(ctx, dee.Session); err != nil || ok {
		t.Fatalf("dee's expired session: %v %v, want invalid", ok, err)
	}
	if got, err := svc.SessionsValid(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no sessions: %v %v", got, err)
	}
}
