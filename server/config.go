package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/httpapi"
	"github.com/onebox/onebox/internal/jobs"
)

// config is everything `onebox serve` needs, read from the environment and
// then overridden by flags, so a unit file can set variables and a person
// at a shell can still try a different port.
type config struct {
	Addr          string
	Data          string
	PublicURL     string
	OperatorToken string
	LogLevel      string
	MaxBody       int
	MaxUpload     int
	// MaxConns (ONEBOX_MAX_CONNS) bounds the HTTP connections served at
	// once; 0 keeps httpapi's default.
	MaxConns int
	Demo     bool
	Origins  []string
	// Push is read by parsePush (push.go).
	Push pushConfig
	// SecretKey (ONEBOX_SECRET_KEY) seals channel secrets in the store;
	// empty uses <data>/secret.key (server/privacy.go).
	SecretKey string
	// Limits are the request rate limits (ONEBOX_RATE_*).
	Limits httpapi.Limits
	// MaxSocketsPerAgent caps an agent's live sockets
	// (ONEBOX_MAX_SOCKETS_PER_AGENT); 0 keeps the default, -1 is no cap.
	MaxSocketsPerAgent int
	// TrustedProxies are the peers whose X-Forwarded-For gives the client
	// address (ONEBOX_TRUSTED_PROXIES); empty trusts none.
	TrustedProxies []netip.Prefix
	// Store (ONEBOX_STORE) is a PostgreSQL URL for running several
	// processes on one database; empty keeps bbolt in Data.
	Store string
	// MediaDir (ONEBOX_MEDIA_DIR) holds media bytes; default <data>/media.
	// With PostgreSQL it is required: every process must see every file.
	MediaDir string
	// NATSURL (ONEBOX_NATS_URL) carries live events between processes.
	NATSURL string
	// CatchUpEvery (ONEBOX_CATCH_UP_INTERVAL) is the period of the hub's
	// head checks with NATS: how long a socket on another process may
	// wait for an event whose publish was lost, twice over.
	CatchUpEvery time.Duration
	// JobLeaseTTL (ONEBOX_JOB_LEASE_TTL) is the lifetime of a background
	// job's lease: the longest a job pauses when the process running it
	// dies. The processes' clocks must agree to well within it.
	JobLeaseTTL time.Duration
}

// shared reports whether several processes may run on this configuration.
func (c config) shared() bool { return c.Store != "" }

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// parseServe reads the serve command's configuration.
func parseServe(args []string, stderr io.Writer) (config, error) {
	c := config{
		Addr:          envOr("ONEBOX_ADDR", "127.0.0.1:8080"),
		Data:          envOr("ONEBOX_DATA", "./data"),
		PublicURL:     os.Getenv("ONEBOX_PUBLIC_URL"),
		OperatorToken: os.Getenv("ONEBOX_OPERATOR_TOKEN"),
		SecretKey:     os.Getenv("ONEBOX_SECRET_KEY"),
		LogLevel:      envOr("ONEBOX_LOG_LEVEL", "info"),
		Store:         os.Getenv("ONEBOX_STORE"),
		MediaDir:      os.Getenv("ONEBOX_MEDIA_DIR"),
		NATSURL:       os.Getenv("ONEBOX_NATS_URL"),
		MaxBody:       1 << 20,
		MaxUpload:     16 << 20,
		CatchUpEvery:  2 * time.Second,
		JobLeaseTTL:   jobs.DefaultLeaseTTL,
	}
	for _, d := range []struct {
		env, example string
		min          time.Duration
		dst          *time.Duration
	}{
		{"ONEBOX_CATCH_UP_INTERVAL", "2s", time.Millisecond, &c.CatchUpEvery},
		{"ONEBOX_JOB_LEASE_TTL", "30s", time.Second, &c.JobLeaseTTL},
	} {
		if v := os.Getenv(d.env); v != "" {
			n, err := time.ParseDuration(v)
			if err != nil || n < d.min {
				return c, fmt.Errorf("%s must be a duration of at least %s, such as %s, got %q", d.env, d.min, d.example, v)
			}
			*d.dst = n
		}
	}
	for _, p := range []struct {
		env, unit string
		dst       *int
	}{
		{"ONEBOX_MAX_BODY", "bytes", &c.MaxBody},
		{"ONEBOX_MAX_UPLOAD", "bytes", &c.MaxUpload},
		{"ONEBOX_MAX_CONNS", "connections", &c.MaxConns},
	} {
		if v := os.Getenv(p.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return c, fmt.Errorf("%s must be a positive number of %s, got %q", p.env, p.unit, v)
			}
			*p.dst = n
		}
	}
	for _, l := range []struct {
		env string
		dst *httpapi.Rate
	}{
		{"ONEBOX_RATE_SIGNIN", &c.Limits.SignIn},
		{"ONEBOX_RATE_SESSION", &c.Limits.Session},
		{"ONEBOX_RATE_WEBHOOK", &c.Limits.Webhook},
	} {
		if v := os.Getenv(l.env); v != "" {
			r, err := parseRate(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", l.env, err)
			}
			*l.dst = r
		}
	}
	if v := os.Getenv("ONEBOX_MAX_SOCKETS_PER_AGENT"); v == "off" {
		c.MaxSocketsPerAgent = -1 // no cap
	} else if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("ONEBOX_MAX_SOCKETS_PER_AGENT must be a positive number or off, got %q", v)
		}
		c.MaxSocketsPerAgent = n
	}
	if v := os.Getenv("ONEBOX_TRUSTED_PROXIES"); v != "" {
		ps, err := httpapi.ParseTrustedProxies(v)
		if err != nil {
			return c, fmt.Errorf("ONEBOX_TRUSTED_PROXIES: %w", err)
		}
		c.TrustedProxies = ps
	}
	origins := os.Getenv("ONEBOX_ALLOWED_ORIGINS")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (ONEBOX_ADDR)")
	fs.StringVar(&c.Data, "data", c.Data, "data directory (ONEBOX_DATA)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "external base URL (ONEBOX_PUBLIC_URL)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (ONEBOX_LOG_LEVEL)")
	fs.StringVar(&origins, "allowed-origins", origins, "extra comma-separated origins allowed to open WebSockets (ONEBOX_ALLOWED_ORIGINS)")
	fs.BoolVar(&c.Demo, "demo", false, "create a demo team and simulated customers")
	fs.StringVar(&c.MediaDir, "media-dir", c.MediaDir, "media directory, shared by every process with PostgreSQL (ONEBOX_MEDIA_DIR; default DATA/media)")
	// URLs may carry passwords: their flags show no default in -h.
	store := fs.String("store", "", "postgres:// URL of a shared database; empty keeps bbolt in the data directory (ONEBOX_STORE)")
	natsURL := fs.String("nats-url", "", "NATS server carrying live events between processes; needs --store (ONEBOX_NATS_URL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *store != "" {
		c.Store = *store
	}
	if *natsURL != "" {
		c.NATSURL = *natsURL
	}
	if err := checkScaleOut(&c); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Addr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.Origins = append(c.Origins, o)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return c, err
	}
	if err := parsePush(&c.Push); err != nil {
		return c, err
	}
	return c, nil
}

// checkScaleOut checks the settings for running on PostgreSQL (and NATS)
// and fills in the media directory's default.
func checkScaleOut(c *config) error {
	if err := checkStoreSetting(c.Store); err != nil {
		return err
	}
	if c.NATSURL != "" && !c.shared() {
		return errors.New("ONEBOX_NATS_URL (--nats-url) needs a PostgreSQL store (ONEBOX_STORE): with bbolt only one process can run, and it needs no NATS")
	}
	if !c.shared() {
		if c.MediaDir == "" {
			c.MediaDir = filepath.Join(c.Data, "media")
		}
		return nil
	}
	if c.MediaDir == "" {
		return errors.New("ONEBOX_MEDIA_DIR (--media-dir) is required with a PostgreSQL store: every process must read and write the same media files, so point it at a shared directory")
	}
	if c.SecretKey == "" {
		return errors.New("ONEBOX_SECRET_KEY is required with a PostgreSQL store: every process must seal channel secrets with the same key (after `onebox migrate`, use the key in the old data directory's secret.key)")
	}
	return nil
}

// parseRate reads a rate limit written N/UNIT:BURST, UNIT one of s, m, h
// (10/m:5 is ten a minute with a burst of five), or "off".
func parseRate(v string) (httpapi.Rate, error) {
	if v == "off" {
		return httpapi.Rate{Per: -1}, nil
	}
	bad := fmt.Errorf("want N/s:BURST, N/m:BURST, N/h:BURST or off, got %q", v)
	rate, burst, ok := strings.Cut(v, ":")
	if !ok {
		return httpapi.Rate{}, bad
	}
	num, unit, ok := strings.Cut(rate, "/")
	if !ok {
		return httpapi.Rate{}, bad
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return httpapi.Rate{}, bad
	}
	b, err := strconv.Atoi(burst)
	if err != nil || b < 1 {
		return httpapi.Rate{}, bad
	}
	switch unit {
	case "s":
	case "m":
		n /= 60
	case "h":
		n /= 3600
	default:
		return httpapi.Rate{}, bad
	}
	return httpapi.Rate{Per: n, Burst: b}, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log level must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	l, _ := parseLevel(level)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
