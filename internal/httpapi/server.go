package httpapi

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/media"
	"github.com/onebox/onebox/internal/metrics"
)

// DefaultMaxBody is the JSON body limit of CONTRACT.md (ONEBOX_MAX_BODY).
const DefaultMaxBody = 1 << 20

// Timeouts of plain HTTP requests. Hijacked connections (WebSockets) are
// not affected: fasthttp clears the connection's deadlines before handing
// it over (see TestHijackedConnectionOutlivesTimeouts).
const (
	// readTimeout bounds reading one request, headers and body, so a slow
	// client cannot hold a connection (and its buffers) forever.
	readTimeout = 30 * time.Second
	// writeTimeout bounds writing one response.
	writeTimeout = 30 * time.Second
	// idleTimeout is how long a keep-alive connection may wait for its next
	// request; apps poll and reconnect, so this need not be long.
	idleTimeout = 120 * time.Second
	// readBufferSize caps request headers; 8 KiB fits any bearer token and
	// the headers browsers send.
	readBufferSize = 8 << 10
)

// DefaultMaxConns bounds the HTTP connections served at once: requests in
// progress, keep-alive connections waiting for their next request, and
// clients still sending their headers. Upgraded WebSockets leave this
// count (fasthttp hands them off), so it limits what a flood of slow or
// idle connections can hold, not how many agents are live. Past it a new
// connection is answered 503 and closed at once.
const DefaultMaxConns = 10_000

// Config wires a Server. Service is required.
type Config struct {
	Service *inbox.Service
	// WebSocket serves an upgraded connection (internal/ws). Nil makes
	// GET /api/v1/ws answer 503.
	WebSocket func(nc net.Conn, r *http.Request)
	// Metrics receives the HTTP metrics and is served at /metrics; nil
	// gives the server a registry of its own.
	Metrics *metrics.Registry
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OperatorToken enables POST /api/v1/tenants; empty turns it off (404).
	OperatorToken string
	// MaxBody is the largest request body accepted, in bytes (default 1 MiB).
	MaxBody int
	// Static holds the PWA (index.html at its root); nil serves none.
	Static fs.FS
	// Ready reports whether the server can do its work (store open); nil
	// means always ready.
	Ready func() error
	// Webhooks serve /webhooks/{type}/{channel_id}, by channel type; a
	// type without one answers 501.
	Webhooks map[string]channel.Webhook
	// Media keeps uploaded and received files; nil makes the media
	// endpoints answer 503.
	Media *media.Store
	// MaxUpload is the largest media upload or catalog import accepted,
	// in bytes (ONEBOX_MAX_UPLOAD, default 16 MiB). Other routes keep
	// MaxBody.
	MaxUpload int
	// PushHosts are the push services Web Push subscriptions may point at
	// (ONEBOX_WEBPUSH_ALLOWED_HOSTS); empty means the major browsers'.
	PushHosts inbox.HostList
	// Backup writes a consistent copy of the store for
	// GET /api/v1/operator/backup; nil makes it answer 503.
	Backup func(ctx context.Context, w io.Writer) (int64, error)
	// Limits are the request rate limits (ratelimit.go); zero fields take
	// their defaults.
	Limits Limits
	// MaxConns is DefaultMaxConns unless set (ONEBOX_MAX_CONNS).
	MaxConns int
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (ONEBOX_TRUSTED_PROXIES, see ParseTrustedProxies); empty trusts none.
	TrustedProxies []netip.Prefix

	// timeouts override the constants above and uploadReadTimeout
	// (media_limits.go); tests shorten them.
	readTimeout, idleTimeout, uploadTimeout time.Duration
}

// Server is the HTTP server. Create it with New, run it with Serve, stop it
// with Shutdown.
type Server struct {
	svc     *inbox.Service
	log     *slog.Logger
	app     *fiber.App
	ws      func(nc net.Conn, r *http.Request)
	static  fs.FS
	ready   func() error
	maxBody int
	metrics *metrics.Registry

	webhooks map[string]channel.Webhook

	// media and maxUpload serve the media and catalog routes
	// (media_*.go, catalog_*.go).
	media     *media.Store
	maxUpload int
	// uploadTimeout is how long an upload with a live session may take
	// to send its body (media_limits.go).
	uploadTimeout time.Duration

	pushHosts inbox.HostList // push_webpush_subscribe.go

	backup  func(ctx context.Context, w io.Writer) (int64, error) // operator_backup.go
	limits  *limiters                                             // ratelimit.go
	proxies proxies                                               // proxy.go
	// limitHits counts refusals by limits (ratelimit.go).
	limitHits *metrics.Counter

	// operator is the SHA-256 of the operator token, so comparing a
	// candidate takes the same time whatever its length.
	operator *[sha256.Size]byte

	latency   *metrics.Histogram
	unmatched *routeInfo
	staticRI  *routeInfo
	assets    staticAssets // build version and gzipped app files (static.go)
	draining  atomic.Bool
}

// New builds the server and its routes. It panics if cfg.Service is nil, a
// wiring mistake no caller can recover from at run time.
func New(cfg Config) *Server {
	if cfg.Service == nil {
		panic("httpapi: Config.Service is required")
	}
	s := &Server{
		svc:     cfg.Service,
		log:     cfg.Logger,
		ws:      cfg.WebSocket,
		static:  cfg.Static,
		ready:   cfg.Ready,
		maxBody: cfg.MaxBody,
		metrics: cfg.Metrics,

		webhooks: cfg.Webhooks,

		media:         cfg.Media,
		maxUpload:     cfg.MaxUpload,
		uploadTimeout: cfg.uploadTimeout,

		pushHosts: cfg.PushHosts,

		backup: cfg.Backup,
		limits: newLimiters(cfg.Limits),

		proxies: cfg.TrustedProxies,
	}
	if s.pushHosts.Empty() {
		s.pushHosts = inbox.DefaultPushHosts()
	}
	if s.maxUpload <= 0 {
		s.maxUpload = media.DefaultMaxSize
	}
	if s.uploadTimeout <= 0 {
		s.uploadTimeout = uploadReadTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.metrics == nil {
		s.metrics = metrics.NewRegistry()
	}
	if s.ready == nil {
		s.ready = func() error { return nil }
	}
	if cfg.OperatorToken != "" {
		h := sha256.Sum256([]byte(cfg.OperatorToken))
		s.operator = &h
	}
	s.latency = s.metrics.Histogram("onebox_http_request_duration_seconds",
		"Time to answer HTTP requests, by route template and status class.",
		metrics.LatencyBuckets(), "method", "route", "code")
	s.limitHits = newLimitHits(s.metrics)
	s.unmatched = &routeInfo{path: "unmatched"}
	s.staticRI = &routeInfo{path: "static"}

	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	rt, it := readTimeout, idleTimeout
	if cfg.readTimeout > 0 {
		rt = cfg.readTimeout
	}
	if cfg.idleTimeout > 0 {
		it = cfg.idleTimeout
	}
	s.app = fiber.New(fiber.Config{
		// Bodies a little over MaxBody are read whole so the route answers
		// a clean 413 JSON; far larger ones are cut off by fasthttp, which
		// also answers 413 through ErrorHandler but closes the connection.
		BodyLimit:             s.maxBody + 64<<10,
		ReadTimeout:           rt,
		WriteTimeout:          writeTimeout,
		IdleTimeout:           it,
		ReadBufferSize:        readBufferSize,
		Concurrency:           maxConns,
		ErrorHandler:          s.fiberError,
		DisableStartupMessage: true,
		// Values handed to the service (ids from the path, query values)
		// must not alias fasthttp's reused buffers.
		Immutable:     true,
		CaseSensitive: true,
		// ServerHeader stays empty: no Server header, which would only
		// help someone looking for a version to attack.

		// Fiber believes X-Forwarded-Proto and -Host only from these peers
		// (and from anyone if the check is off). No ProxyHeader: the client
		// address is read by clientIP (proxy.go).
		EnableTrustedProxyCheck: true,
		TrustedProxies:          s.proxies.strings(),
	})
	s.app.Server().Logger = fasthttpLogger{s.log}
	// fasthttp quotes raw requests (tokens included) in its error texts
	// unless told not to.
	s.app.Server().SecureErrorLogMessage = true
	// Uploads get a larger body limit and more time than JSON calls
	// (media_limits.go).
	s.app.Server().HeaderReceived = s.requestConfig
	s.app.Server().Handler = s.guardMethods(s.app.Server().Handler)
	if s.ws != nil {
		// Sockets live for hours: let fasthttp free its per-request state
		// once a connection is handed over (see websocket.go). The only
		// hijacking route is the WebSocket, whose owner closes its sockets.
		EnableWebSocketHandoff(s.app)
	}
	s.app.Use(s.frame, s.limitBody)
	for _, r := range s.routes() {
		methods := []string{r.method}
		if r.method == fiber.MethodGet {
			methods = append(methods, fiber.MethodHead) // as app.Get does
		}
		for _, m := range methods {
			info := &routeInfo{method: m, path: r.path}
			handlers := []fiber.Handler{info.tag}
			switch r.access {
			case member:
				handlers = append(handlers, s.authenticate, s.limitSession)
			case admin:
				handlers = append(handlers, s.authenticate, s.limitSession, requireAdmin)
			}
			s.app.Add(m, r.path, append(handlers, r.handle)...)
		}
	}
	// Last, so every API route wins; see static.go.
	s.app.Use(s.serveStatic)
	return s
}

// Serve answers HTTP on ln until Shutdown. It returns nil after a clean
// shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.app.Listener(ln); err != nil {
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections, lets in-flight requests finish and
// closes idle keep-alive connections, giving up when ctx ends. /readyz
// answers 503 from the start so a load balancer stops sending traffic.
// Hijacked WebSocket connections are not closed here: their owner
// (internal/ws) closes them with 1001.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	return nil
}

// fasthttpLogger sends fasthttp's own complaints to slog at debug level
// (Fiber silences them altogether). They are about single connections
// (resets, timeouts) and rarely actionable; the one that matters, a failing
// listener, also ends Serve with an error.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("http server", "detail", fmt.Sprintf(format, args...))
}
