package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/onebox/onebox/internal/inbox"
)

// tenantCmd handles `onebox tenant create`. It opens the store directly, so
// it works only while the server is stopped (with bbolt; a PostgreSQL store
// takes it at any time); with the server running, the operator can use
// POST /api/v1/tenants instead.
func tenantCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: onebox tenant create --name NAME [--data DIR] [--store URL]")
	}
	fs := flag.NewFlagSet("tenant create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the organization's name")
	data := fs.String("data", envOr("ONEBOX_DATA", "./data"), "data directory (ONEBOX_DATA)")
	storeURL := fs.String("store", "", "postgres:// URL of a shared database (ONEBOX_STORE)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *storeURL == "" {
		*storeURL = os.Getenv("ONEBOX_STORE")
	}
	if *name == "" {
		return errors.New("tenant create: --name is required")
	}
	opened, err := openStore(ctx, *storeURL, *data, storeHooks{})
	if err != nil {
		if *storeURL != "" {
			return err
		}
		return fmt.Errorf("%w (is the server running? then use POST /api/v1/tenants)", err)
	}
	defer opened.Store.Close()
	svc, err := inbox.NewService(inbox.Config{Store: opened.Store})
	if err != nil {
		return err
	}
	t, admin, _, raw, err := svc.CreateTenant(ctx, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tenant id:        %s\ntenant name:      %s\nadmin agent id:   %s\nadmin access key: %s\n\nThe access key is shown only this once; keep it somewhere safe.\n",
		t.ID, t.Name, admin.ID, raw)
	return nil
}

func storePath(dataDir string) string { return filepath.Join(dataDir, "onebox.db") }
