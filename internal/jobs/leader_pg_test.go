package jobs

import (
	"context"
	"os"
	"testing"

	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// openPG opens a store on dsn as one server process does: its own pool
// of connections, so two of them on one DSN are two processes to the
// database.
func openPG(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The lease on PostgreSQL, where it is what keeps several processes from
// running one job at once: two processes, each with its own connection
// pool on one database, and a third that only reads the lease.
func TestLeaderHandsOverOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	leaderHandover(t, openPG(t, dsn), openPG(t, dsn), openPG(t, dsn))
}
