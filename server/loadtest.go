package main

import (
	"context"
	"io"
	"os"

	"github.com/onebox/onebox/internal/loadtest"
)

// loadtestCmd is `onebox loadtest`: it starts this same binary as a server
// (and as client worker processes), measures it against the product's
// performance targets and prints the results. See docs/benchmarks.md.
func loadtestCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := loadtest.ParseFlags(args, stderr)
	if err != nil {
		return err
	}
	if f.Worker {
		return loadtest.RunWorker(ctx, os.Stdin, stdout, f.WorkerDeadline)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	f.Config.Exe = exe
	return loadtest.Run(ctx, f.Config, stdout, stderr)
}
