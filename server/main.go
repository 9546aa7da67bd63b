// Command onebox is the OneBox server: a self-hosted, real-time unified inbox
// for customer-support teams. This package only reads configuration and
// wires the internal packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped at build time (make passes -ldflags -X main.version=...).
var version = "dev"

const usage = `OneBox — a unified inbox for customer-support teams.

Usage:
  onebox serve [--demo] [--addr ADDR] [--data DIR] [--public-url URL] [--log-level LEVEL]
               [--store postgres://...] [--media-dir DIR] [--nats-url URL]
  onebox tenant create --name NAME [--data DIR] [--store URL]
  onebox backup [--url URL] [--token TOKEN] FILE   (copy a running server's database)
  onebox restore [--data DIR] FILE                 (server stopped; the old database is kept)
  onebox migrate --from DIR --to postgres://...    (server stopped; copy bbolt into PostgreSQL)
  onebox loadtest [flags]     (run "onebox loadtest -h" for its flags)
  onebox version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "tenant":
		err = tenantCmd(ctx, args[1:], stdout, stderr)
	case "backup":
		err = backupCmd(ctx, args[1:], stdout, stderr)
	case "restore":
		err = restoreCmd(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args[1:], stdout, stderr)
	case "loadtest":
		err = loadtestCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "onebox", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "onebox: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "onebox:", err)
		return 1
	}
	return 0
}
