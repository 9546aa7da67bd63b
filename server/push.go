package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/metrics"
	"github.com/onebox/onebox/internal/push"
	"github.com/onebox/onebox/internal/push/fcm"
	"github.com/onebox/onebox/internal/push/webpush"
)

// pushConfig is the push notifications' part of the configuration.
type pushConfig struct {
	// Hosts are the push services Web Push endpoints may name
	// (ONEBOX_WEBPUSH_ALLOWED_HOSTS).
	Hosts inbox.HostList
	// VAPIDSubject is how push services can reach the operator
	// (ONEBOX_VAPID_SUBJECT: mailto: or https:).
	VAPIDSubject string
	// FCM is on when credentials or an endpoint are set (ONEBOX_FCM_*).
	FCM fcm.Config
}

func parsePush(c *pushConfig) error {
	hosts, err := inbox.ParsePushHosts(os.Getenv("ONEBOX_WEBPUSH_ALLOWED_HOSTS"))
	if err != nil {
		return fmt.Errorf("ONEBOX_WEBPUSH_ALLOWED_HOSTS: %w", err)
	}
	c.Hosts = hosts
	c.VAPIDSubject = os.Getenv("ONEBOX_VAPID_SUBJECT")
	if c.VAPIDSubject != "" {
		if _, _, err := webpush.Subject(c.VAPIDSubject, ""); err != nil {
			return fmt.Errorf("ONEBOX_VAPID_SUBJECT: %w", err)
		}
	}
	c.FCM = fcm.Config{
		CredentialsFile: os.Getenv("ONEBOX_FCM_CREDENTIALS"),
		ProjectID:       os.Getenv("ONEBOX_FCM_PROJECT_ID"),
		Endpoint:        os.Getenv("ONEBOX_FCM_ENDPOINT"),
	}
	return nil
}

// newPush loads the VAPID keys (made on first start and kept in the store,
// so browsers' subscriptions outlive restarts), builds the senders the
// configuration enables, and the dispatcher that feeds them.
func newPush(ctx context.Context, cfg config, svc *inbox.Service, live inbox.Live, feed *push.Feed, reg *metrics.Registry, log *slog.Logger) (*push.Dispatcher, error) {
	keys, err := svc.EnsureVAPIDKeys(ctx, webpush.GenerateKeys)
	if err != nil {
		return nil, err
	}
	subject, ok, err := webpush.Subject(cfg.Push.VAPIDSubject, cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	if !ok && !cfg.Demo {
		log.Warn("push: set ONEBOX_VAPID_SUBJECT (mailto: or https:) or an https ONEBOX_PUBLIC_URL; some push services refuse the placeholder", "subject", subject)
	}
	wp, err := webpush.New(webpush.Config{Keys: keys, Subject: subject, Hosts: cfg.Push.Hosts, Logger: log})
	if err != nil {
		return nil, err
	}
	senders := map[string]push.Sender{inbox.PushWebPush: wp}
	if cfg.Push.FCM.Enabled() {
		fc := cfg.Push.FCM
		fc.Logger = log
		s, err := fcm.New(ctx, fc)
		if err != nil {
			return nil, err
		}
		senders[inbox.PushFCM] = s
		log.Info("push: FCM on", "project", s.Project(), "endpoint_override", fc.Endpoint != "")
	}
	d, err := push.New(push.Config{Feed: feed, Planner: svc, Live: live, Senders: senders, Logger: log})
	if err != nil {
		return nil, err
	}
	counter := func(name, help string, f func(push.Stats) uint64) {
		reg.CounterFunc(name, help, func() float64 { return float64(f(d.Stats())) })
	}
	counter("onebox_push_delivered_total", "Pushes a push service accepted.", func(s push.Stats) uint64 { return s.Delivered })
	counter("onebox_push_gone_total", "Push devices forgotten because their service said they are gone.", func(s push.Stats) uint64 { return s.Gone })
	counter("onebox_push_rejected_total", "Pushes a push service refused (configuration or payload).", func(s push.Stats) uint64 { return s.Rejected })
	counter("onebox_push_retries_total", "Push retries scheduled.", func(s push.Stats) uint64 { return s.Retried })
	counter("onebox_push_abandoned_total", "Pushes given up: out of attempts or too old.", func(s push.Stats) uint64 { return s.GaveUp })
	counter("onebox_push_dropped_total", "Pushes or events dropped because a queue was full.", func(s push.Stats) uint64 { return s.Dropped })
	return d, nil
}
