package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/bolt"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// restoreCmd is `onebox restore [--data DIR] FILE`, run with the server
// stopped: it checks FILE is a sound database, then puts a copy of it in
// place of DIR's onebox.db, keeping the old file as onebox.db.bak-<time>.
// It refuses while a server holds the store, and with a PostgreSQL store
// (ONEBOX_STORE), whose own tools restore it.
func restoreCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", envOr("ONEBOX_DATA", "./data"), "data directory (ONEBOX_DATA)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: onebox restore [--data DIR] FILE   (with the server stopped)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("restore: one FILE is required")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if isPostgresURL(os.Getenv("ONEBOX_STORE")) {
		return errPostgresBackups("restore")
	}
	kept, err := restore(*data, fs.Arg(0), time.Now())
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored %s into %s\n", fs.Arg(0), storePath(*data))
	if kept != "" {
		fmt.Fprintf(stdout, "the previous database is kept as %s\n", kept)
	}
	return nil
}

// restore puts a copy of file in place of data's store and returns where
// the old store was kept ("" when there was none).
func restore(data, file string, now time.Time) (string, error) {
	if err := checkDatabase(file); err != nil {
		return "", fmt.Errorf("%s is not a sound database: %w", file, err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return "", err
	}
	dst := storePath(data)
	// Holding the current store's lock for the whole swap keeps a server
	// from starting on a half-restored directory, and fails at once if
	// one runs.
	if _, err := os.Stat(dst); err == nil {
		db, err := bbolt.Open(dst, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			return "", fmt.Errorf("the store %s is in use (stop the server first)", dst)
		case err == nil:
			defer db.Close()
		}
		// Any other error: the current file is damaged, which is a reason
		// to restore; no server can be running on it.
	}
	tmp := dst + ".restore"
	if err := copyFileSynced(file, tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	// A new identity: the old store's log segments, still beside it, are
	// then never replayed onto the restored file.
	if err := bolt.Detach(tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	logs, err := bolt.LogFiles(dst)
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("list the old store's log: %w", err)
	}
	kept := ""
	if _, err := os.Stat(dst); err == nil {
		kept = dst + ".bak-" + now.UTC().Format("20060102T150405Z")
		if err := os.Link(dst, kept); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("keep the old store: %w", err)
		}
		// The kept copy takes its log along, so it opens complete.
		for _, l := range logs {
			if err := os.Link(l, kept+strings.TrimPrefix(l, dst)); err != nil {
				os.Remove(tmp)
				return "", fmt.Errorf("keep the old store's log: %w", err)
			}
		}
	}
	// One rename: the directory holds either the old store or the new one.
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", err
	}
	for _, l := range logs {
		os.Remove(l)
	}
	return kept, syncDirOf(dst)
}

func copyFileSynced(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// errPostgresBackups explains that backup and restore are PostgreSQL's own
// business when it is the store.
func errPostgresBackups(cmd string) error {
	return fmt.Errorf("%s: ONEBOX_STORE is a PostgreSQL database; back it up with pg_dump and restore it with pg_restore (docs/scaling.md), and copy ONEBOX_MEDIA_DIR apart", cmd)
}
