package httpapi

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/onebox/onebox/internal/inbox"
)

// Error codes this layer answers itself; the service's come from inbox.Code.
const (
	codeInvalid          = "invalid"
	codeUnauthorized     = "unauthorized"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeTooLarge         = "too_large"
	codeRateLimited      = "rate_limited"
	codeInternal         = "internal"
	codeNotImplemented   = "not_implemented"
	codeUnavailable      = "unavailable"
	codeTimeout          = "timeout"
)

// apiError is an error this layer answers itself (bad query parameters,
// malformed bodies, missing tokens), already in the shape of the answer.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func apiErr(status int, code, message string) error {
	return &apiError{status: status, code: code, message: message}
}

func invalid(message string) error { return apiErr(fiber.StatusBadRequest, codeInvalid, message) }

// errBody is the one shape every error takes on the wire.
type errBody struct {
	Error errDetail `json:"error"`
}

type errDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// inboxStatus maps the domain's codes to HTTP statuses.
func inboxStatus(code inbox.Code) int {
	switch code {
	case inbox.CodeInvalid:
		return fiber.StatusBadRequest
	case inbox.CodeUnauthorized:
		return fiber.StatusUnauthorized
	case inbox.CodeForbidden:
		return fiber.StatusForbidden
	case inbox.CodeNotFound:
		return fiber.StatusNotFound
	case inbox.CodeConflict, inbox.CodeWindowClosed:
		// The request is fine but the conversation's state refuses it
		// (WhatsApp's 24-hour window); the code tells the app which.
		return fiber.StatusConflict
	case inbox.CodeTooLarge:
		return fiber.StatusRequestEntityTooLarge
	case inbox.CodeRateLimited:
		return fiber.StatusTooManyRequests
	case inbox.CodeUnavailable:
		return fiber.StatusServiceUnavailable
	}
	return fiber.StatusInternalServerError
}

// fiberStatus gives Fiber's and fasthttp's own errors (unknown route, wrong
// method, oversized body or headers, timeouts) a code and a message of ours,
// rather than Fiber's text, which echoes the path back.
func fiberStatus(status int) (string, string) {
	switch status {
	case fiber.StatusNotFound:
		return codeNotFound, "no such resource"
	case fiber.StatusMethodNotAllowed:
		return codeMethodNotAllowed, "this resource does not accept that method"
	case fiber.StatusRequestEntityTooLarge:
		return codeTooLarge, "the request body is too large"
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return codeTooLarge, "the request headers are too large"
	case fiber.StatusRequestTimeout:
		return codeTimeout, "the request took too long to arrive"
	case fiber.StatusTooManyRequests:
		return codeRateLimited, "too many requests"
	case fiber.StatusServiceUnavailable:
		return codeUnavailable, "the server is not available"
	case fiber.StatusNotImplemented:
		return codeNotImplemented, "not implemented"
	}
	if status >= 500 {
		return codeInternal, "internal error"
	}
	return codeInvalid, "malformed request"
}

// retryAfter is implemented by errors that know when to try again. A
// rate-limited *inbox.Error does not carry a delay yet, so one second is
// suggested; see the report on inbox.Error.
type retryAfter interface{ RetryAfter() time.Duration }

// writeError answers err as CONTRACT.md's error JSON. Anything that is not
// a known error is logged with the request id and answered as a bare 500:
// the real error may name files, keys or other tenants' data.
func (s *Server) writeError(c *fiber.Ctx, err error) {
	status, code, message := fiber.StatusInternalServerError, codeInternal, "internal error"
	var ae *apiError
	var fe *fiber.Error
	var ie *inbox.Error
	switch {
	case errors.As(err, &ae):
		status, code, message = ae.status, ae.code, ae.message
	case errors.As(err, &ie) && ie.Code != inbox.CodeInternal:
		status, code, message = inboxStatus(ie.Code), string(ie.Code), ie.Message
		if status == fiber.StatusInternalServerError {
			code, message = codeInternal, "internal error"
		}
	case errors.As(err, &fe):
		status = fe.Code
		code, message = fiberStatus(fe.Code)
	}
	if status >= 500 && status != fiber.StatusNotImplemented && status != fiber.StatusServiceUnavailable {
		s.log.LogAttrs(c.UserContext(), slog.LevelError, "request failed",
			slog.String("request_id", requestID(c)),
			slog.String("method", c.Method()),
			slog.String("route", routeOf(c, s.unmatched).path),
			slog.Any("err", err))
	}
	s.countLimit(status, err)
	switch status {
	case fiber.StatusUnauthorized:
		c.Set(fiber.HeaderWWWAuthenticate, "Bearer")
	case fiber.StatusTooManyRequests:
		wait := time.Second
		var ra retryAfter
		if errors.As(err, &ra) && ra.RetryAfter() > 0 {
			wait = ra.RetryAfter()
		}
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	}
	// Whatever a handler set before failing (a file's caching headers, a
	// partial body) must not leak into the error.
	c.Response().Header.Del(fiber.HeaderCacheControl)
	c.Response().Header.Del(fiber.HeaderETag)
	if err := c.Status(status).JSON(errBody{Error: errDetail{Code: code, Message: message}}); err != nil {
		// Encoding two strings cannot fail; keep a status at least.
		c.Status(fiber.StatusInternalServerError)
	}
}

// fiberError is Fiber's ErrorHandler. Most errors are answered by frame;
// this catches the ones raised before any route runs (fasthttp's body and
// header limits, read timeouts, unparsable requests), which skip the
// middleware and so need their security headers here.
func (s *Server) fiberError(c *fiber.Ctx, err error) error {
	setSecurityHeaders(&c.Response().Header)
	s.writeError(c, err)
	status := c.Response().StatusCode()
	s.unmatched.observe(s.latency, "other", status, 0)
	// Only the status: fasthttp's error text may quote the raw request,
	// headers and tokens included.
	s.log.LogAttrs(c.UserContext(), slog.LevelInfo, "http request rejected", slog.Int("status", status))
	return nil
}

// knownMethod reports whether Fiber routes method m. Fiber answers any
// other with a plain-text 400 before middleware runs, so guardMethods
// answers those first, as JSON.
func knownMethod(m []byte) bool {
	switch string(m) {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch,
		fiber.MethodDelete, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace:
		return true
	}
	return false
}

// guardMethods wraps the fasthttp handler so requests with a method Fiber
// does not know get the same JSON error shape as everything else: 501, as
// RFC 9110 (9.1) suggests for unrecognised methods.
func (s *Server) guardMethods(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	body := []byte(`{"error":{"code":"not_implemented","message":"this server does not implement that HTTP method"}}`)
	return func(ctx *fasthttp.RequestCtx) {
		if knownMethod(ctx.Method()) {
			next(ctx)
			return
		}
		setSecurityHeaders(&ctx.Response.Header)
		ctx.Response.Header.SetContentType(fiber.MIMEApplicationJSON)
		ctx.SetStatusCode(fiber.StatusNotImplemented)
		ctx.SetBody(body)
		s.unmatched.observe(s.latency, "other", fiber.StatusNotImplemented, 0)
	}
}
