package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/postgres"
	"github.com/onebox/onebox/internal/privacy"
)

// migrateCmd is `onebox migrate --from DATA_DIR --to postgres://...`, run
// with the server stopped: it copies a bbolt data directory's database
// into an empty PostgreSQL database, every collection and every tenant's
// log with the same seqs, then checks the copy against what it read.
// Media files and the server key are not in the database; it says what to
// do with them.
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", envOr("ONEBOX_DATA", "./data"), "the bbolt data directory to copy (ONEBOX_DATA)")
	// The URL may carry a password: no default shown in -h.
	to := fs.String("to", "", "postgres:// URL of the empty target database (default ONEBOX_STORE)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: onebox migrate --from DATA_DIR --to postgres://...   (with the server stopped)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate: unexpected argument %q", fs.Arg(0))
	}
	if *to == "" {
		*to = os.Getenv("ONEBOX_STORE")
	}
	if !isPostgresURL(*to) {
		return errors.New("migrate: --to (or ONEBOX_STORE) must be a postgres:// or postgresql:// URL")
	}
	src := storePath(*from)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("migrate: no OneBox database at %s: %w", src, err)
	}
	start := time.Now()
	sum, err := migrate(ctx, src, *to)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(stdout, "copied %s into %s in %v:\n", src, redactDSN(*to), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "  records: %d\n  events:  %d\n  logs:    %d\n", sum.Records, sum.Events, len(sum.Logs))
	tenants := make([]string, 0, len(sum.Logs))
	for t := range sum.Logs {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	for _, t := range tenants {
		l := sum.Logs[t]
		fmt.Fprintf(stdout, "    tenant %s: head %d, %d events held\n", t, l.Head, l.Events)
	}
	fmt.Fprintln(stdout, "The copy matches the source: same records, same events, same heads.")
	fmt.Fprintf(stdout, "\nNext:\n  - copy %s to the shared directory you set as ONEBOX_MEDIA_DIR\n", filepath.Join(*from, "media"))
	if _, err := os.Stat(filepath.Join(*from, privacy.SecretKeyFile)); err == nil {
		fmt.Fprintf(stdout, "  - set ONEBOX_SECRET_KEY on every process to the contents of %s\n", filepath.Join(*from, privacy.SecretKeyFile))
	} else {
		fmt.Fprintln(stdout, "  - set ONEBOX_SECRET_KEY on every process to the key this server used")
	}
	fmt.Fprintln(stdout, "  - start the processes with ONEBOX_STORE set to the database (docs/scaling.md)")
	return nil
}

// migrate copies the bbolt store at src into the database at dsn and
// returns what the database then holds, after checking it against what was
// read. Opening src takes its lock, so a running server makes it fail.
func migrate(ctx context.Context, src, dsn string) (postgres.Summary, error) {
	from, err := bolt.Open(src, bolt.Options{})
	if err != nil {
		return postgres.Summary{}, fmt.Errorf("%w (stop the server first)", err)
	}
	defer from.Close()
	to, err := postgres.Open(ctx, dsn, postgres.Options{MaxConns: 2})
	if err != nil {
		return postgres.Summary{}, err
	}
	defer to.Close()

	// read counts what was handed over, to check the copy against.
	read := postgres.Summary{Logs: map[string]postgres.LogSummary{}}
	imported, err := to.Import(ctx, postgres.ImportSource{
		Records: func(emit func(tenant, coll string, key, val []byte) error) error {
			return from.Export(ctx, bolt.Exporter{Record: func(tenant, coll string, key, val []byte) error {
				read.Records++
				return emit(tenant, coll, key, val)
			}})
		},
		Events: func(emit func(tenant string, seq uint64, data []byte) error) error {
			return from.Export(ctx, bolt.Exporter{Event: func(tenant string, seq uint64, data []byte) error {
				l := read.Logs[tenant]
				l.Events++
				read.Logs[tenant] = l
				read.Events++
				return emit(tenant, seq, data)
			}})
		},
		Heads: func(emit func(tenant string, head uint64) error) error {
			return from.Export(ctx, bolt.Exporter{Head: func(tenant string, head uint64) error {
				l := read.Logs[tenant]
				l.Head = head
				read.Logs[tenant] = l
				return emit(tenant, head)
			}})
		},
	})
	if errors.Is(err, postgres.ErrNotEmpty) {
		return postgres.Summary{}, errors.New("the target database already holds OneBox data; migrate only into an empty database (nothing was changed)")
	}
	if err != nil {
		return postgres.Summary{}, err
	}
	if err := sameSummary(read, imported); err != nil {
		return imported, fmt.Errorf("the copy differs from the source: %w", err)
	}
	// Read back once more, outside the copy's transaction: what the next
	// server will see.
	after, err := to.Summarize(ctx)
	if err != nil {
		return imported, err
	}
	if err := sameSummary(read, after); err != nil {
		return imported, fmt.Errorf("the copy differs from the source after commit: %w", err)
	}
	return after, nil
}

func sameSummary(want, got postgres.Summary) error {
	if want.Records != got.Records {
		return fmt.Errorf("%d records read, %d stored", want.Records, got.Records)
	}
	if want.Events != got.Events {
		return fmt.Errorf("%d events read, %d stored", want.Events, got.Events)
	}
	if len(want.Logs) != len(got.Logs) {
		return fmt.Errorf("%d tenant logs read, %d stored", len(want.Logs), len(got.Logs))
	}
	for t, w := range want.Logs {
		if g := got.Logs[t]; g != w {
			return fmt.Errorf("tenant %s: read head %d with %d events, stored head %d with %d", t, w.Head, w.Events, g.Head, g.Events)
		}
	}
	return nil
}
