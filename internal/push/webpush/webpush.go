// Package webpush delivers pushes to browsers (the installed web app)
// through their vendors' Web Push services: RFC 8291 aes128gcm payloads,
// RFC 8292 VAPID authentication, RFC 8030 TTL, Urgency and Topic. It is the
// only package that imports github.com/SherClockHolmes/webpush-go.
package webpush

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/push"
)

// Timeouts of one push. Push services answer in milliseconds; one that does
// not is treated as down and retried later rather than holding a worker.
const (
	dialTimeout     = 5 * time.Second
	tlsTimeout      = 5 * time.Second
	responseTimeout = 10 * time.Second
	requestTimeout  = 15 * time.Second
	// maxDrain is how much of a response body is read so the connection
	// can be reused; push services answer with a few bytes.
	maxDrain = 64 << 10
)

// Config wires a Sender.
type Config struct {
	Keys inbox.VAPIDKeys
	// Subject is the VAPID "sub": a mailto: address or an https: URL where
	// a push service's operator can reach whoever runs this server.
	Subject string
	// Hosts are the push services endpoints may point at; checked again at
	// sending so a narrowed list takes effect for old subscriptions too.
	Hosts inbox.HostList
	// Client defaults to NewClient().
	Client *http.Client
	Logger *slog.Logger
}

// Sender sends Web Push notifications. It implements push.Sender.
type Sender struct {
	keys    inbox.VAPIDKeys
	subject string
	hosts   inbox.HostList
	client  *http.Client
	log     *slog.Logger
}

var _ push.Sender = (*Sender)(nil)

// New checks cfg.
func New(cfg Config) (*Sender, error) {
	if err := checkKeys(cfg.Keys); err != nil {
		return nil, err
	}
	subject, err := librarySubject(cfg.Subject)
	if err != nil {
		return nil, err
	}
	if cfg.Hosts.Empty() {
		cfg.Hosts = inbox.DefaultPushHosts()
	}
	if cfg.Client == nil {
		cfg.Client = NewClient()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sender{keys: cfg.Keys, subject: subject, hosts: cfg.Hosts, client: cfg.Client, log: cfg.Logger}, nil
}

// NewClient is an HTTP client fit for push services: bounded in time at
// every step, keeping connections to the few services it talks to, and not
// following redirects (an endpoint must not lead the server elsewhere).
func NewClient() *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   tlsTimeout,
			ResponseHeaderTimeout: responseTimeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          128,
			MaxIdleConnsPerHost:   32,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// GenerateKeys makes a fresh VAPID key pair.
func GenerateKeys() (inbox.VAPIDKeys, error) {
	priv, pub, err := webpushgo.GenerateVAPIDKeys()
	if err != nil {
		return inbox.VAPIDKeys{}, fmt.Errorf("generate VAPID keys: %w", err)
	}
	return inbox.VAPIDKeys{PublicKey: pub, PrivateKey: priv}, nil
}

func checkKeys(k inbox.VAPIDKeys) error {
	pub, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.PublicKey, "="))
	if err != nil || len(pub) != 65 || pub[0] != 4 {
		return errors.New("webpush: the VAPID public key is not an uncompressed P-256 point")
	}
	priv, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.PrivateKey, "="))
	if err != nil || len(priv) != 32 {
		return errors.New("webpush: the VAPID private key is not a P-256 scalar")
	}
	return nil
}

// Subject picks the VAPID subject: the operator's (ONEBOX_VAPID_SUBJECT)
// when set, else the server's public URL when it is https. Otherwise there
// is no address a push service could use, and ok is false; a mailto: at the
// public host is returned so development setups still work.
func Subject(configured, publicURL string) (subject string, ok bool, err error) {
	if configured != "" {
		if _, err := librarySubject(configured); err != nil {
			return "", false, err
		}
		return configured, true, nil
	}
	u, err := url.Parse(publicURL)
	if err == nil && u.Scheme == "https" && u.Host != "" {
		return "https://" + u.Host, true, nil
	}
	host := "localhost"
	if err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return "mailto:onebox@" + host, false, nil
}

// librarySubject turns a subject into what webpush-go expects: it prefixes
// "mailto:" to anything that does not start with "https:".
func librarySubject(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, "https://") && len(s) > len("https://"):
		return s, nil
	case strings.HasPrefix(s, "mailto:") && strings.Contains(s, "@"):
		return strings.TrimPrefix(s, "mailto:"), nil
	}
	return "", fmt.Errorf("webpush: the VAPID subject must be a mailto: address or an https:// URL, got %q", s)
}

// Send encrypts n for the device and posts it to its push service.
func (s *Sender) Send(ctx context.Context, d inbox.PushDevice, n push.Notification) push.Result {
	if d.Kind != inbox.PushWebPush {
		return push.Result{Outcome: push.Rejected, Err: fmt.Errorf("webpush: device of kind %q", d.Kind)}
	}
	if _, err := s.hosts.Check(d.Endpoint); err != nil {
		return push.Result{Outcome: push.Rejected, Err: fmt.Errorf("webpush: endpoint no longer allowed: %w", err)}
	}
	body, err := json.Marshal(n.Payload)
	if err != nil {
		return push.Result{Outcome: push.Rejected, Err: fmt.Errorf("webpush: encode payload: %w", err)}
	}
	urgency := webpushgo.UrgencyNormal
	if n.Urgent {
		urgency = webpushgo.UrgencyHigh
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := webpushgo.SendNotificationWithContext(ctx, body,
		&webpushgo.Subscription{Endpoint: d.Endpoint, Keys: webpushgo.Keys{P256dh: d.P256dh, Auth: d.Auth}},
		&webpushgo.Options{
			HTTPClient:      s.client,
			Subscriber:      s.subject,
			Topic:           n.Topic,
			TTL:             int(n.TTL / time.Second),
			Urgency:         urgency,
			VAPIDPublicKey:  s.keys.PublicKey,
			VAPIDPrivateKey: s.keys.PrivateKey,
		})
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// The request was made and the network failed: the service
			// may be back shortly. The URL error quotes the endpoint,
			// which is a capability, so only its cause is kept.
			return push.Result{Outcome: push.Retry, Err: fmt.Errorf("webpush: %s: %w", ue.Op, ue.Err)}
		}
		// Nothing was sent: the subscription's keys or the payload are
		// unusable.
		return push.Result{Outcome: push.Rejected, Err: fmt.Errorf("webpush: prepare push: %w", err)}
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, maxDrain))
	return classify(resp, detail, time.Now())
}

// classify maps a push service's answer to what to do about it (RFC 8030
// section 5 and the services' documentation).
func classify(resp *http.Response, body []byte, now time.Time) push.Result {
	r := push.Result{Status: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		r.Outcome = push.Delivered
	case code == http.StatusNotFound || code == http.StatusGone:
		r.Outcome = push.Gone
	case code == http.StatusTooManyRequests || code >= 500:
		r.Outcome = push.Retry
		r.RetryAfter = push.ParseRetryAfter(resp.Header.Get("Retry-After"), now)
		r.Err = fmt.Errorf("webpush: push service answered %d", code)
	default:
		// 400 (malformed), 401/403 (VAPID refused), 413 (too large) and
		// anything unexpected: the request was wrong, not the device.
		r.Outcome = push.Rejected
		r.Err = fmt.Errorf("webpush: push service answered %d: %s", code, snippet(body))
	}
	return r
}

// snippet is the start of a service's error text, on one line, for logs.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
