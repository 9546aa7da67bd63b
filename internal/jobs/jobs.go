// Package jobs runs the server's periodic maintenance. Each job is a loop
// on a ticker that lives as long as its context, so the server starts them
// with `go` and stops them by cancelling.
package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Snoozes reopens conversations whose snooze has ended, checking every
// `every` (and once at start, so snoozes that ended while the server was
// down wake straight away). It returns nil when ctx is done; the error
// result lets it run under the same supervisor as the server's other
// background loops.
func Snoozes(ctx context.Context, svc *inbox.Service, every time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return Every(ctx, "wake snoozed conversations", every, logger, func(ctx context.Context) error {
		n, err := svc.WakeSnoozed(ctx, time.Now())
		if n > 0 {
			logger.Debug("jobs: woke snoozed conversations", "count", n)
		}
		return err
	})
}

// Every calls fn now and then every interval until ctx is done. An error
// is logged and the job carries on at its next tick: maintenance that
// fails once (a busy disk) usually succeeds the next time. A run that
// takes longer than interval delays the next one instead of piling up.
// It returns nil when ctx is done.
func Every(ctx context.Context, name string, interval time.Duration, logger *slog.Logger, fn func(context.Context) error) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			logger.Warn("jobs: "+name+" failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
