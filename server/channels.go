package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/channel/sms"
	"github.com/onebox/onebox/internal/channel/tiktok"
	"github.com/onebox/onebox/internal/channel/whatsapp"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/jobs"
	"github.com/onebox/onebox/internal/media"
)

// providerChannels wires WhatsApp, TikTok and SMS: their webhooks for the
// HTTP server, and their senders, behind per-channel limits and the
// durable "sending" mark, added to the outbox's senders.
func providerChannels(svc *inbox.Service, store *media.Store, maxMedia int64, senders map[string]inbox.Sender, log *slog.Logger) map[string]channel.Webhook {
	senders[inbox.ChannelWhatsApp] = channel.NewGuard(
		whatsapp.NewSender(whatsapp.SenderConfig{Media: store, MaxMedia: maxMedia}),
		channel.GuardConfig{Claims: svc, Limits: whatsapp.DefaultLimits})
	senders[inbox.ChannelTikTok] = channel.NewGuard(
		tiktok.NewSender(tiktok.SenderConfig{Media: store, Aliases: svc, MaxMedia: maxMedia}),
		channel.GuardConfig{Claims: svc, Limits: tiktok.DefaultLimits})
	senders[inbox.ChannelSMS] = channel.NewGuard(
		sms.NewSender(sms.SenderConfig{}),
		channel.GuardConfig{Claims: svc, Limits: sms.DefaultLimits, Idempotent: true})
	return map[string]channel.Webhook{
		inbox.ChannelWhatsApp: whatsapp.NewWebhook(whatsapp.WebhookConfig{Inbox: svc, Files: channel.Fetcher{Media: store, Max: maxMedia}, Logger: log}),
		inbox.ChannelTikTok:   tiktok.NewWebhook(tiktok.WebhookConfig{Inbox: svc, Files: channel.Fetcher{Media: store, Max: maxMedia}, Logger: log}),
		inbox.ChannelSMS:      sms.NewWebhook(svc),
	}
}

// staleStatuses drops, every few minutes, provider status reports about
// messages that never showed up within a day.
func staleStatuses(svc *inbox.Service, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		return jobs.Every(ctx, "drop stale status reports", 10*time.Minute, log, func(ctx context.Context) error {
			n, err := svc.DropStaleStatuses(ctx, time.Now())
			if n > 0 {
				log.Debug("dropped status reports about unknown messages", "count", n)
			}
			return err
		})
	}
}
