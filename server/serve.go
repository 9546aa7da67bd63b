package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onebox/onebox"
	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/channel/demo"
	"github.com/onebox/onebox/internal/httpapi"
	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/jobs"
	"github.com/onebox/onebox/internal/media"
	"github.com/onebox/onebox/internal/metrics"
	"github.com/onebox/onebox/internal/nats"
	"github.com/onebox/onebox/internal/outbox"
	"github.com/onebox/onebox/internal/push"
	"github.com/onebox/onebox/internal/ws"
)

// serve runs the server until ctx ends (SIGTERM/SIGINT), then shuts down in
// the order that loses nothing: stop accepting, say goodbye to sockets
// (1001), let in-flight writes finish, close the store.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	// The node names this process to the others (presence, job leases).
	node := nodeID()

	reg := metrics.NewRegistry()
	metrics.RegisterRuntime(reg)
	commitLatency := reg.Histogram("onebox_store_commit_seconds", "Time to commit one group of writes to disk.", metrics.LatencyBuckets())
	commitBatch := reg.Histogram("onebox_store_commit_batch_size", "Writes committed together in one transaction.", []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024})
	eventsTotal := reg.Counter("onebox_events_total", "Events appended to tenants' logs.")
	ckptLatency := reg.Histogram("onebox_store_checkpoint_seconds", "Time to copy the store's write-ahead log into its file (bbolt).", metrics.LatencyBuckets())
	ckptEntries := reg.Counter("onebox_store_checkpoint_entries_total", "Records copied from the store's write-ahead log into its file (bbolt).")

	// With NATS, live events reach the sockets every process holds; a
	// process that misses some fills the gap from the shared store.
	hubOpts := hub.Options{Logger: log, Node: node}
	// The hub checks sessions through the service, which is built on the
	// store the hub feeds: set once the service exists.
	var sessionChecker atomic.Pointer[inbox.Service]
	var broker *nats.Broker
	if cfg.NATSURL != "" {
		// The process starts even while NATS is down: it keeps trying to
		// connect, and its own sockets get its own events meanwhile.
		broker, err = nats.Connect(nats.Options{URL: cfg.NATSURL, Name: "onebox " + node, Logger: log})
		if err != nil {
			return err
		}
		defer broker.Close()
		hubOpts.Broker = broker
		hubOpts.Heartbeat = 2 * time.Second
		// An event whose publish was lost (its process was killed after
		// the commit, or NATS refused it) reaches the other processes'
		// sockets within about two periods, with nothing committed after.
		hubOpts.CatchUpEvery = cfg.CatchUpEvery
		// A revocation announced while this process was cut off from
		// NATS is found in the store after the reconnect, and within a
		// minute if the loss went unnoticed.
		hubOpts.Verify = func(ctx context.Context, _ string, sessions []inbox.Session) ([]bool, error) {
			svc := sessionChecker.Load()
			if svc == nil {
				return nil, errors.New("service not started")
			}
			return svc.SessionsValid(ctx, sessions)
		}
		hubOpts.VerifyEvery = time.Minute
	}
	// The hub fills a gap in what it is handed from the store; the store
	// publishes to the hub. The closure breaks that cycle.
	var store inbox.Store
	hubOpts.Fill = func(ctx context.Context, tenant string, since uint64) ([]inbox.Event, error) {
		evs, _, err := store.Events(ctx, tenant, since, 1000)
		return evs, err
	}
	hubOpts.Heads = func(ctx context.Context, tenants []string) (map[string]uint64, error) {
		if hr, ok := store.(inbox.HeadReader); ok {
			return hr.Heads(ctx, tenants)
		}
		out := make(map[string]uint64, len(tenants))
		for _, t := range tenants {
			_, head, err := store.Events(ctx, t, 0, 0)
			if err != nil {
				return nil, err
			}
			out[t] = head
		}
		return out, nil
	}
	h := hub.New(hubOpts)
	defer h.Close()
	// Push notifications get committed events after the hub, through a
	// queue that never holds up a commit.
	pushFeed := push.NewFeed(0)
	opened, err := openStore(ctx, cfg.Store, cfg.Data, storeHooks{
		Logger: log,
		Publisher: inbox.PublisherFunc(func(evs []inbox.Event) {
			eventsTotal.Add(float64(len(evs)))
			h.Publish(evs)
			pushFeed.Publish(evs)
		}),
		OnCommit: func(d time.Duration, n int) {
			commitLatency.Observe(d.Seconds())
			commitBatch.Observe(float64(n))
		},
		OnCheckpoint: func(d time.Duration, n int) {
			ckptLatency.Observe(d.Seconds())
			ckptEntries.Add(float64(n))
		},
	})
	if err != nil {
		return err
	}
	store = opened.Store
	storeOpen := true
	if !opened.Shared {
		// The embedded store fsyncs on every group commit and checkpoint;
		// see bolt.SyncThreads.
		if before, after, changed := bolt.AllowSyncThreads(); changed {
			log.Info("gomaxprocs raised for threads waiting in fsync", "from", before, "to", after)
		}
	}
	defer func() {
		if storeOpen {
			store.Close()
		}
	}()
	if opened.Retries != nil {
		reg.CounterFunc("onebox_store_retries_total", "Transactions run again after conflicting with another writer.", func() float64 { return float64(opened.Retries()) })
	}

	svc, err := inbox.NewService(inbox.Config{Store: store, Live: h, PublicURL: cfg.PublicURL, Logger: log,
		ReadReceipts: []string{inbox.ChannelWhatsApp}})
	if err != nil {
		return err
	}
	sessionChecker.Store(svc)
	if err := sealSecrets(ctx, svc, opened.Compact, cfg); err != nil {
		return err
	}

	mediaStore, err := media.New(ctx, media.Config{
		Dir: cfg.MediaDir, Service: svc, PublicURL: cfg.PublicURL,
		MaxSize: int64(cfg.MaxUpload), Logger: log,
	})
	if err != nil {
		return err
	}
	svc.SetMediaURLs(mediaStore.SignURLs)
	eraser, err := newEraser(svc, compactFunc(opened.Compact), mediaStore, log)
	if err != nil {
		return err
	}

	pusher, err := newPush(ctx, cfg, svc, h, pushFeed, reg, log)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}

	stream := ws.NewServer(ws.Options{Backend: svc, Hub: h, Logger: log, AllowedOrigins: cfg.Origins,
		MaxSocketsPerAgent: cfg.MaxSocketsPerAgent})
	reg.GaugeFunc("onebox_websocket_connections", "Live WebSocket connections.", func() float64 { return float64(stream.Stats().Connections) })
	reg.CounterFunc("onebox_websocket_frames_sent_total", "Frames written to WebSockets.", func() float64 { return float64(stream.Stats().FramesSent) })
	reg.CounterFunc("onebox_websocket_slow_closes_total", "Sockets closed because they could not keep up (4008).", func() float64 { return float64(stream.Stats().SlowCloses) })
	reg.CounterFunc("onebox_websocket_auth_failures_total", "Sockets closed for a missing or bad hello (4401).", func() float64 { return float64(stream.Stats().AuthFailures) })
	reg.CounterFunc("onebox_websocket_agent_limit_closes_total", "Sockets refused because their agent had too many open (1013).", func() float64 { return float64(stream.Stats().AgentLimitCloses) })
	reg.CounterFunc("onebox_websocket_flood_closes_total", "Sockets closed for sending frames too fast (1008).", func() float64 { return float64(stream.Stats().FloodCloses) })
	reg.CounterFunc("onebox_websocket_too_big_closes_total", "Sockets closed for a frame over the size limit (1009).", func() float64 { return float64(stream.Stats().TooBigCloses) })
	if broker != nil {
		reg.GaugeFunc("onebox_nats_connected", "1 while the connection to NATS is up; without it live events reach this process's own sockets only.", func() float64 {
			if broker.Connected() {
				return 1
			}
			return 0
		})
		reg.CounterFunc("onebox_nats_publish_errors_total", "Messages NATS did not take; they reached this process's sockets only.", func() float64 { return float64(broker.Stats().PublishErrors) })
		reg.CounterFunc("onebox_hub_behind_head_total", "Sockets found behind the store's head and caught up from it (an event's publish was lost).", func() float64 { return float64(h.Stats().Behind) })
	}
	reg.CounterFunc("onebox_websocket_capacity_refusals_total", "Sockets refused with 503 before the upgrade: the process holds as many as its file limit allows.", func() float64 { return float64(stream.Stats().CapacityRefusals) })

	var simCtx context.Context
	simCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	senders := map[string]inbox.Sender{}
	demoSender := demo.NewSender(demo.SenderConfig{Service: svc, Logger: log})
	senders[inbox.ChannelDemo] = demoSender
	webhooks := providerChannels(svc, mediaStore, int64(cfg.MaxUpload), senders, log)

	ocfg := outbox.Config{Service: svc, Senders: senders, Logger: log}
	if opened.Shared {
		// Replies written in another process do not wake this one's
		// worker; it looks for them this often instead.
		ocfg.PollInterval = time.Second
	}
	worker := outbox.New(ocfg)
	svc.SetOnOutbound(worker.Wake)

	if cfg.Demo {
		if err := setupDemo(ctx, svc, store, cfg, stdout); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}

	api := httpapi.New(httpapi.Config{
		Service:        svc,
		WebSocket:      stream.ServeConn,
		Metrics:        reg,
		Logger:         log,
		OperatorToken:  cfg.OperatorToken,
		PushHosts:      cfg.Push.Hosts,
		MaxBody:        cfg.MaxBody,
		Media:          mediaStore,
		MaxUpload:      cfg.MaxUpload,
		MaxConns:       cfg.MaxConns,
		Webhooks:       webhooks,
		Static:         onebox.WebApp(),
		Backup:         opened.Backup,
		Limits:         cfg.Limits,
		TrustedProxies: cfg.TrustedProxies,
		// Ready means the store answers: every request can be served.
		// NATS being down is not a reason to take the process out of
		// the balancer: its own sockets still get its events live, and
		// the others' catch up when NATS returns (onebox_nats_connected
		// tells an operator).
		Ready: func() error {
			if ctx.Err() != nil {
				return errors.New("shutting down")
			}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return opened.Ping(pctx)
		},
	})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	log.Info("onebox listening", "addr", ln.Addr().String(), "store", opened.Where, "media", cfg.MediaDir,
		"nats", cfg.NATSURL != "", "node", node, "version", version)
	if cfg.Demo {
		fmt.Fprintf(stdout, "\nOpen %s and sign in with one of the keys above.\n\n", cfg.PublicURL)
	}

	// Jobs that work on the whole store run in one process at a time among
	// those sharing it; with bbolt (no lease store) they simply run here.
	var leases inbox.Store
	if opened.Shared {
		leases = store
	}
	leader := jobs.NewLeader(jobs.LeaderConfig{Store: leases, Holder: node, Logger: log, TTL: cfg.JobLeaseTTL})
	var wg sync.WaitGroup
	background := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(simCtx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("background task stopped", "task", name, "err", err)
			}
		}()
	}
	single := func(name string, f func(context.Context) error) { background(name, leader.Wrap(name, f)) }
	single("outbox", worker.Run)
	single("snoozes", func(ctx context.Context) error { return jobs.Snoozes(ctx, svc, 5*time.Second, log) })
	single("stale-statuses", staleStatuses(svc, log))
	single("media-cleanup", func(ctx context.Context) error {
		return jobs.Every(ctx, "clean up unused media", time.Hour, log, mediaStore.Cleanup)
	})
	single("erasure", func(ctx context.Context) error {
		if opened.Shared {
			go wakeEvery(ctx, 30*time.Second, eraser.Wake)
		}
		return eraser.Run(ctx)
	})
	single("retention", func(ctx context.Context) error {
		return jobs.Every(ctx, "purge data past retention", time.Hour, log, purgeExpired(svc, log))
	})
	if cfg.Demo {
		sim := demo.NewSimulator(demo.SimulatorConfig{Service: svc, Logger: log})
		single("demo-customers", sim.Run)
	}
	// Each process pushes for the messages it committed itself (its feed
	// sees only those), so every message is pushed once with no lease; the
	// demo channel's receipts follow the sends of this process's outbox.
	background("push", pusher.Run)
	background("demo-receipts", demoSender.Run)

	serveErr := make(chan error, 1)
	go func() { serveErr <- api.Serve(ln) }()

	select {
	case err := <-serveErr:
		stopBackground()
		wg.Wait()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := api.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := stream.Shutdown(shutdownCtx); err != nil {
		log.Warn("websocket shutdown", "err", err)
	}
	stopBackground()
	wg.Wait()
	storeOpen = false
	if err := store.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	log.Info("stopped")
	return nil
}
