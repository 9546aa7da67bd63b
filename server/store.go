package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/postgres"
)

// isPostgresURL reports whether a store setting names a PostgreSQL
// database rather than leaving the store to bbolt.
func isPostgresURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// checkStoreSetting refuses a store setting that is neither empty nor a
// PostgreSQL URL. The value is not repeated: it may carry a password.
func checkStoreSetting(s string) error {
	if s != "" && !isPostgresURL(s) {
		return errors.New("ONEBOX_STORE (--store) must be a postgres:// or postgresql:// URL, or empty for bbolt in ONEBOX_DATA")
	}
	return nil
}

// storeHooks are what serve wants to hear from whichever store it opened.
type storeHooks struct {
	Logger    *slog.Logger
	Publisher inbox.Publisher
	OnCommit  func(d time.Duration, batch int)
	// OnCheckpoint hears of each copy of bbolt's write-ahead log into its
	// file (bbolt only).
	OnCheckpoint func(d time.Duration, entries int)
}

// openedStore is the store serve runs on and what differs between the two
// kinds. Store is the concrete value, not wrapped, so the service still
// finds the optional interfaces it implements (inbox.Speculator).
type openedStore struct {
	Store inbox.Store
	// Compact makes erased data leave the database files.
	Compact func(context.Context) error
	// Backup streams a consistent copy; nil where the database has its own
	// tools (pg_dump).
	Backup func(ctx context.Context, w io.Writer) (int64, error)
	// Ping reports whether the store can serve, for /readyz.
	Ping func(context.Context) error
	// Shared: several processes may run on this store at once.
	Shared bool
	// Where names the store in logs, without credentials.
	Where string
	// Retries counts transactions run again after a conflict (PostgreSQL).
	Retries func() int64
}

// openStore opens the store a setting names: bbolt in dataDir when dsn is
// empty, otherwise the PostgreSQL database.
func openStore(ctx context.Context, dsn, dataDir string, hooks storeHooks) (*openedStore, error) {
	if err := checkStoreSetting(dsn); err != nil {
		return nil, err
	}
	if dsn == "" {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		s, err := bolt.Open(storePath(dataDir), bolt.Options{Logger: hooks.Logger, Publisher: hooks.Publisher, OnCommit: hooks.OnCommit, OnCheckpoint: hooks.OnCheckpoint})
		if err != nil {
			return nil, err
		}
		return &openedStore{
			Store:   s,
			Compact: s.Compact,
			Backup:  s.Backup,
			Ping:    func(context.Context) error { return nil },
			Where:   storePath(dataDir),
		}, nil
	}
	s, err := postgres.Open(ctx, dsn, postgres.Options{Logger: hooks.Logger, Publisher: hooks.Publisher, OnCommit: hooks.OnCommit})
	if err != nil {
		return nil, err
	}
	return &openedStore{
		Store:   s,
		Compact: s.Compact,
		Ping:    s.Ping,
		Shared:  true,
		Where:   redactDSN(dsn),
		Retries: func() int64 { return s.Stats().Retries },
	}, nil
}

// redactDSN keeps a PostgreSQL URL's host and database for logs and drops
// everything else (user, password, parameters).
func redactDSN(dsn string) string {
	rest := dsn[strings.Index(dsn, "://")+3:]
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q]
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	return "postgres://" + rest
}

// nodeID names this process among those sharing a store: the host name
// (so an operator can tell which machine holds a job's lease) and random
// bytes (so two processes on one host differ, and a restarted process is
// not mistaken for its predecessor).
func nodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "onebox"
	}
	var b [4]byte
	rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// wakeEvery calls wake every d until ctx ends. Wakes do not cross
// processes, so with a shared store the process running a job also looks
// for work the others recorded.
func wakeEvery(ctx context.Context, d time.Duration, wake func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			wake()
		}
	}
}
