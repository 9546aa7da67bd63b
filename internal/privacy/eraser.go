// Package privacy runs the data-rights jobs that reach beyond the store:
// erasure (media files, rewriting the store file) and retention.
package privacy

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/onebox/onebox/internal/inbox"
)

// MediaEraser removes a media record and its files at once
// (internal/media's Store).
type MediaEraser interface {
	Erase(ctx context.Context, tenant, id string) error
}

// Compactor rewrites the store file so freed pages holding erased data are
// gone (internal/bolt's Store).
type Compactor interface {
	Compact(ctx context.Context) error
}

// EraserConfig wires an Eraser. Service and Compactor are required; Media
// may be nil on a server without media.
type EraserConfig struct {
	Service   *inbox.Service
	Media     MediaEraser
	Compactor Compactor
	Logger    *slog.Logger
}

// Eraser carries erasure jobs through to completion, one at a time. Jobs
// are durable in the store, so Run picks up those a stop interrupted.
type Eraser struct {
	svc     *inbox.Service
	media   MediaEraser
	compact Compactor
	log     *slog.Logger
	wake    chan struct{}
}

// NewEraser checks cfg.
func NewEraser(cfg EraserConfig) (*Eraser, error) {
	if cfg.Service == nil || cfg.Compactor == nil {
		return nil, fmt.Errorf("privacy: eraser needs a service and a compactor")
	}
	e := &Eraser{svc: cfg.Service, media: cfg.Media, compact: cfg.Compactor, log: cfg.Logger, wake: make(chan struct{}, 1)}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// Wake tells Run that a job was added. It never blocks.
func (e *Eraser) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run works through pending jobs until ctx ends, then waits for Wake. A
// job that fails is retried on the next wake-up or start.
func (e *Eraser) Run(ctx context.Context) error {
	for {
		if err := e.RunPending(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("privacy: erasure failed; retried on the next request or start", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		}
	}
}

// RunPending completes every job not completed yet. The store work of all
// of them comes first, so one rewrite of the store file serves them all.
func (e *Eraser) RunPending(ctx context.Context) error {
	codes, err := e.svc.PendingErasures(ctx)
	if err != nil || len(codes) == 0 {
		return err
	}
	var ready []inbox.ErasureJob
	for _, code := range codes {
		job, err := e.prepare(ctx, code)
		if err != nil {
			return err
		}
		if job.Phase == inbox.PhaseCompact {
			ready = append(ready, job)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	if err := e.compact.Compact(ctx); err != nil {
		return fmt.Errorf("erasure: %w", err)
	}
	for _, job := range ready {
		if err := e.svc.CompleteErasure(ctx, job.Code); err != nil {
			return err
		}
		e.log.Info("privacy: erasure completed", "contacts", len(job.ContactIDs), "messages", job.Messages)
	}
	return nil
}

// prepare runs a job's store and media work, up to the point where only
// the rewrite of the store file is left.
func (e *Eraser) prepare(ctx context.Context, code string) (inbox.ErasureJob, error) {
	for {
		job, err := e.svc.EraseStep(ctx, code)
		if err != nil {
			return inbox.ErasureJob{}, err
		}
		switch job.Phase {
		case inbox.PhaseMedia:
			if e.media != nil {
				for _, id := range job.Media {
					if err := e.media.Erase(ctx, job.TenantID, id); err != nil {
						return inbox.ErasureJob{}, fmt.Errorf("erasure %s: %w", code, err)
					}
				}
			}
			if err := e.svc.ErasureMediaDone(ctx, code); err != nil {
				return inbox.ErasureJob{}, err
			}
		case inbox.PhaseCompact, inbox.PhaseDone:
			return job, nil
		}
	}
}
