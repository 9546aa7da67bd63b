package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/metrics"
	"github.com/onebox/onebox/internal/ratelimit"
)

// Rate is one limit: Per calls per second in the long run, Burst at once.
// A zero Per turns the limit off.
type Rate struct {
	Per   float64
	Burst int
}

// Limits are the request rate limits. Zero fields take the defaults below;
// a negative Per turns that limit off.
type Limits struct {
	// SignIn limits POST /api/v1/session per client address and, apart,
	// per access-key prefix (its first 12 characters), so guessing keys
	// crawls whether it comes from one address or many.
	SignIn Rate
	// SignInKey is the per-prefix half of SignIn; zero takes SignIn's.
	SignInKey Rate
	// Session limits every call made with one session token.
	Session Rate
	// Webhook limits each channel's webhook.
	Webhook Rate
}

// Defaults of Limits: sign-in 10 a minute with a burst of 5, a session 20
// a second with a burst of 100, a channel's webhook 200 a second with a
// burst of 400.
var (
	DefaultSignIn  = Rate{Per: 10.0 / 60, Burst: 5}
	DefaultSession = Rate{Per: 20, Burst: 100}
	DefaultWebhook = Rate{Per: 200, Burst: 400}
)

type limiters struct {
	signInIP, signInKey, session, webhook *ratelimit.Limiter
}

func newLimiters(l Limits) *limiters {
	mk := func(r, def Rate) *ratelimit.Limiter {
		if r.Per == 0 {
			r = def
		}
		if r.Per < 0 {
			return nil // a nil Limiter allows everything
		}
		return ratelimit.New(ratelimit.Options{Rate: r.Per, Burst: r.Burst})
	}
	if l.SignInKey.Per == 0 {
		l.SignInKey = l.SignIn
	}
	return &limiters{
		signInIP:  mk(l.SignIn, DefaultSignIn),
		signInKey: mk(l.SignInKey, DefaultSignIn),
		session:   mk(l.Session, DefaultSession),
		webhook:   mk(l.Webhook, DefaultWebhook),
	}
}

// rateLimitedError answers 429 rate_limited with Retry-After (errors.go).
type rateLimitedError struct {
	apiError
	wait time.Duration
	kind string // the "limit" label of onebox_limit_hits_total
}

func (e *rateLimitedError) Unwrap() error             { return &e.apiError }
func (e *rateLimitedError) RetryAfter() time.Duration { return e.wait }

func errLimited(kind, what string, wait time.Duration) error {
	return &rateLimitedError{
		apiError: apiError{status: fiber.StatusTooManyRequests, code: codeRateLimited,
			message: fmt.Sprintf("too many %s; try again later", what)},
		wait: wait,
		kind: kind,
	}
}

// Values of the "limit" label of onebox_limit_hits_total.
const (
	hitSignInIP   = "signin_ip"
	hitSignInKey  = "signin_key"
	hitSession    = "session"
	hitWebhook    = "webhook"
	hitRate       = "rate_other" // a 429 from the service itself
	hitBodySize   = "body_size"
	hitHeaderSize = "header_size"
	hitSlowClient = "read_timeout"
)

// newLimitHits registers onebox_limit_hits_total with every series at
// zero, so an alert on its rate works before the first hit.
func newLimitHits(reg *metrics.Registry) *metrics.Counter {
	c := reg.Counter("onebox_limit_hits_total",
		"Requests refused by a limit: rate limits, body and header size, slow clients.", "limit")
	for _, k := range []string{hitSignInIP, hitSignInKey, hitSession, hitWebhook, hitRate, hitBodySize, hitHeaderSize, hitSlowClient} {
		c.With(k)
	}
	return c
}

// countLimit counts an answer that a limit caused, from its status: every
// path to a 413, 429, 431 or 408 (this layer's checks, fasthttp's own, the
// service's) passes through writeError.
func (s *Server) countLimit(status int, err error) {
	var kind string
	switch status {
	case fiber.StatusTooManyRequests:
		kind = hitRate
		var rl *rateLimitedError
		if errors.As(err, &rl) && rl.kind != "" {
			kind = rl.kind
		}
	case fiber.StatusRequestEntityTooLarge:
		kind = hitBodySize
	case fiber.StatusRequestHeaderFieldsTooLarge:
		kind = hitHeaderSize
	case fiber.StatusRequestTimeout:
		kind = hitSlowClient
	default:
		return
	}
	s.limitHits.With(kind).Inc()
}

// limitSignIn slows down guessing access keys: per client address, and per
// key prefix so spreading guesses over addresses does not help against one
// key. A sign-in that succeeds gives its tokens back: only failures count,
// so a team behind one address signing in many devices is not held up,
// while a guesser, who fails, crawls.
func (s *Server) limitSignIn(next fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ip := s.clientIP(c)
		if ok, wait := s.limits.signInIP.Allow(ip); !ok {
			return errLimited(hitSignInIP, "sign-in attempts from this address", wait)
		}
		prefix := ""
		var req struct {
			AccessKey string `json:"access_key"`
		}
		// A malformed body is the handler's to refuse; it has no key to
		// limit.
		if json.Unmarshal(c.Body(), &req) == nil && req.AccessKey != "" {
			prefix = req.AccessKey
			if len(prefix) > 12 {
				prefix = prefix[:12]
			}
			if ok, wait := s.limits.signInKey.Allow(prefix); !ok {
				s.limits.signInIP.Return(ip)
				return errLimited(hitSignInKey, "sign-in attempts with this key", wait)
			}
		}
		err := next(c)
		if err == nil && c.Response().StatusCode() == fiber.StatusCreated {
			s.limits.signInIP.Return(ip)
			if prefix != "" {
				s.limits.signInKey.Return(prefix)
			}
		}
		return err
	}
}

// limitSession runs after authenticate on member and admin routes: each
// session (one device) gets its own generous budget.
func (s *Server) limitSession(c *fiber.Ctx) error {
	if ok, wait := s.limits.session.Allow(principal(c).Session.Hash); !ok {
		return errLimited(hitSession, "requests", wait)
	}
	return c.Next()
}

// limitWebhook gives each channel's webhook its own budget, so one
// provider's burst cannot starve the others.
func (s *Server) limitWebhook(next fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if ok, wait := s.limits.webhook.Allow(c.Params("channel_id")); !ok {
			return errLimited(hitWebhook, "webhook calls for this channel", wait)
		}
		return next(c)
	}
}
