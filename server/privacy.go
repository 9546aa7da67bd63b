package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/media"
	"github.com/onebox/onebox/internal/privacy"
)

// newEraser wires the erasure runner: the service records requests and
// wakes it; it removes media files and compacts the store file.
func newEraser(svc *inbox.Service, compactor privacy.Compactor, mediaStore *media.Store, log *slog.Logger) (*privacy.Eraser, error) {
	e, err := privacy.NewEraser(privacy.EraserConfig{Service: svc, Media: mediaStore, Compactor: compactor, Logger: log})
	if err != nil {
		return nil, err
	}
	svc.SetOnErasure(e.Wake)
	return e, nil
}

// sealSecrets gives the service the server key, seals channel secrets
// stored before there was one, and then compacts the store so their plain
// copies leave the file.
func sealSecrets(ctx context.Context, svc *inbox.Service, compact func(context.Context) error, cfg config) error {
	key, err := privacy.LoadSecretKey(cfg.Data, cfg.SecretKey)
	if err != nil {
		return fmt.Errorf("secret key: %w", err)
	}
	if err := svc.SetSecretKey(key); err != nil {
		return fmt.Errorf("secret key: %w", err)
	}
	n, err := svc.SealChannelSecrets(ctx)
	if err != nil || n == 0 {
		return err
	}
	return compact(ctx)
}

// compactFunc makes a store's Compact a privacy.Compactor.
type compactFunc func(context.Context) error

func (f compactFunc) Compact(ctx context.Context) error { return f(ctx) }

// purgeExpired is the hourly retention run: messages past each tenant's
// policy, then expired sessions and old audit IP addresses.
func purgeExpired(svc *inbox.Service, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := svc.PurgeExpired(ctx); err != nil {
			return err
		}
		sessions, ips, err := svc.PurgeAccessData(ctx)
		if sessions+ips > 0 {
			log.Info("retention: removed access data", "sessions", sessions, "audit_ips", ips)
		}
		return err
	}
}
