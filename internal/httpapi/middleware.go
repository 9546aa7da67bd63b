package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/metrics"
)

// localKey types the keys of c.Locals so no other code can collide with
// them.
type localKey int

const (
	keyRequestID localKey = iota
	keyRoute
	keyPrincipal
)

// routeInfo is a route's identity for logs and metrics, with its latency
// series cached per status class so recording costs no map lookup. An
// empty method stands for catch-alls (unmatched paths, static files) that
// serve several methods; their series are looked up per request.
type routeInfo struct {
	method string
	path   string
	series [6]atomic.Pointer[metrics.HistogramValue]
}

// tag is the first handler of every route: it tells frame which template
// matched, since Fiber only knows the path that was asked for.
func (ri *routeInfo) tag(c *fiber.Ctx) error {
	c.Locals(keyRoute, ri)
	return c.Next()
}

func (ri *routeInfo) observe(h *metrics.Histogram, method string, status int, d time.Duration) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	if ri.method == "" {
		h.With(method, ri.path, classLabel(class)).Observe(d.Seconds())
		return
	}
	v := ri.series[class].Load()
	if v == nil {
		v = h.With(method, ri.path, classLabel(class))
		ri.series[class].Store(v)
	}
	v.Observe(d.Seconds())
}

func classLabel(class int) string {
	switch class {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return "other"
}

func routeOf(c *fiber.Ctx, fallback *routeInfo) *routeInfo {
	if ri, ok := c.Locals(keyRoute).(*routeInfo); ok {
		return ri
	}
	return fallback
}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(keyRequestID).(string)
	return id
}

// newRequestID is 64 random bits: enough to find one request in the logs,
// short enough to read out over the phone.
func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validRequestID accepts a proxy's request id only if it is short and plain,
// since it ends up in logs and a response header.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// contentSecurityPolicy lets the PWA load only its own code, talk only to
// its own origin, and show inline images it made itself; it may not be
// framed. 'self' covers the live stream too: CSP Level 3 matches ws: and
// wss: URLs of the page's own host, so an injected script cannot open a
// WebSocket to anywhere else to carry data out.
const contentSecurityPolicy = "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'"

// setSecurityHeaders is applied to every response. The CSP and framing
// headers matter for HTML but cost nothing on JSON, and a browser told to
// render a JSON error as a page is then still boxed in.
func setSecurityHeaders(h *fasthttp.ResponseHeader) {
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	h.Set(fiber.HeaderContentSecurityPolicy, contentSecurityPolicy)
	h.Set(fiber.HeaderXFrameOptions, "DENY")
}

// frame is the outermost middleware: request id, security headers, panic
// recovery, error answers, latency metric and the access log. It answers
// errors itself (instead of leaving them to Fiber's ErrorHandler) so the
// log and the metric see the final status.
func (s *Server) frame(c *fiber.Ctx) error {
	start := time.Now()
	id := c.Get(fiber.HeaderXRequestID)
	if !validRequestID(id) {
		id = newRequestID()
	}
	c.Locals(keyRequestID, id)
	c.Set(fiber.HeaderXRequestID, id)
	setSecurityHeaders(&c.Response().Header)

	if err := s.next(c); err != nil {
		s.writeError(c, err)
	}

	status := c.Response().StatusCode()
	ri := routeOf(c, s.unmatched)
	d := time.Since(start)
	ri.observe(s.latency, c.Method(), status, d)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	// The path template, never the path: paths carry ids, queries carry
	// search text and cursors, and headers carry tokens; none belong in
	// logs.
	s.log.LogAttrs(c.UserContext(), level, "http request",
		slog.String("request_id", id),
		slog.String("method", c.Method()),
		slog.String("route", ri.path),
		slog.Int("status", status),
		slog.Duration("duration", d),
	)
	return nil
}

// next runs the rest of the chain, turning a panic into an internal error
// so one bad request cannot take the process down.
func (s *Server) next(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.Next()
}

// limitBody answers 413 for bodies over MaxBody, on every route, before
// authentication or decoding spend anything on them.
func (s *Server) limitBody(c *fiber.Ctx) error {
	if isUpload(c.Method(), c.Path()) {
		return c.Next() // limited while it was read (media_limits.go)
	}
	if len(c.Request().Body()) > s.maxBody {
		return apiErr(fiber.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("the request body is larger than %d bytes", s.maxBody))
	}
	return c.Next()
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(c *fiber.Ctx) (string, bool) {
	return bearerToken(c.Get(fiber.HeaderAuthorization))
}

// bearerToken is bearer on the header's value, for code that runs before
// Fiber has a context (media_limits.go).
func bearerToken(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(scheme):])
	return tok, tok != ""
}

func errNoToken() error {
	return apiErr(fiber.StatusUnauthorized, codeUnauthorized, "an Authorization: Bearer <token> header is required")
}

// authenticate resolves the session token to a Principal for the handlers.
// Every kind of failure answers the same 401 so callers learn nothing about
// which tokens exist.
func (s *Server) authenticate(c *fiber.Ctx) error {
	tok, ok := bearer(c)
	if !ok {
		return errNoToken()
	}
	p, err := s.svc.Authenticate(c.UserContext(), tok)
	if err != nil {
		return err
	}
	p.IP = s.clientIP(c)
	c.Locals(keyPrincipal, p)
	return c.Next()
}

// requireAdmin enforces "role before lookup" for admin routes.
func requireAdmin(c *fiber.Ctx) error {
	if !principal(c).IsAdmin() {
		return inbox.ErrForbidden
	}
	return c.Next()
}

// principal is who authenticate found. Handlers of public routes must not
// call it.
func principal(c *fiber.Ctx) inbox.Principal {
	p, _ := c.Locals(keyPrincipal).(inbox.Principal)
	return p
}
