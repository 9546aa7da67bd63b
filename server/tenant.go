package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

// tenantCmd handles `onebox tenant create`. It opens the store directly, so
// it works only while the server is stopped; with the server running, the
// operator uses POST /api/v1/tenants instead.
func tenantCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: onebox tenant create --name NAME [--data DIR]")
	}
	fs := flag.NewFlagSet("tenant create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the organization's name")
	data := fs.String("data", envOr("ONEBOX_DATA", "./data"), "data directory (ONEBOX_DATA)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("tenant create: --name is required")
	}
	store, err := bolt.Open(storePath(*data), bolt.Options{})
	if err != nil {
		return fmt.Errorf("%w (is the server running? then use POST /api/v1/tenants)", err)
	}
	defer store.Close()
	svc, err := inbox.NewService(inbox.Config{Store: store})
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
