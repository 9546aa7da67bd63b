package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// backupCmd is `onebox backup [--url URL] [--token TOKEN] FILE`: it
// downloads a consistent copy of a running server's database from
// GET /api/v1/operator/backup. The copy goes to FILE.tmp, is synced and
// checked to open as a database, and only then renamed to FILE, so FILE is
// never a partial copy.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", envOr("ONEBOX_URL", "http://127.0.0.1:8080"), "the running server's base URL (ONEBOX_URL)")
	token := fs.String("token", os.Getenv("ONEBOX_OPERATOR_TOKEN"), "operator token (ONEBOX_OPERATOR_TOKEN)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: onebox backup [--url URL] [--token TOKEN] FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("backup: one FILE is required")
	}
	if isPostgresURL(os.Getenv("ONEBOX_STORE")) {
		return errPostgresBackups("backup")
	}
	if *token == "" {
		return errors.New("backup: the operator token is required (--token or ONEBOX_OPERATOR_TOKEN)")
	}
	file := fs.Arg(0)
	start := time.Now()
	n, err := downloadBackup(ctx, strings.TrimRight(*url, "/")+"/api/v1/operator/backup", *token, file)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backup of %d bytes written to %s in %v\n", n, file, time.Since(start).Round(time.Millisecond))
	return nil
}

func downloadBackup(ctx context.Context, url, token, file string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, fmt.Errorf("server answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// A copy cut short ends in an error here: the server drops the
	// connection without the final chunk.
	n, err := io.Copy(f, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download: %w", err)
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if err := checkDatabase(tmp); err != nil {
		return n, fmt.Errorf("the downloaded copy is not a sound database: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return n, err
	}
	keep = true
	return n, syncDirOf(file)
}

// checkDatabase opens path read-only as a bbolt database and runs its
// consistency check (every page reachable once, no page both free and in
// use).
func checkDatabase(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() { // drained whole: Check's goroutine must end
			if len(errs) < 10 {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

func syncDirOf(file string) error {
	d, err := os.Open(filepath.Dir(file))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
