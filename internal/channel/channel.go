// Package channel holds what the provider adapters (whatsapp, tiktok, sms)
// share: the webhook seam the HTTP layer calls, signature helpers, how a
// provider's HTTP answer becomes a send outcome, per-channel send limits
// with a durable "sending" mark, and the seams to the media store.
//
// The HTTP layer knows only the Webhook interface, so it never imports a
// provider package; server/ wires each provider's Webhook and Sender.
package channel

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Request is a provider's webhook call as an adapter sees it. Body is the
// raw body, exactly as signed; it is only valid during Handle.
type Request struct {
	Method string
	Query  url.Values
	// Header returns a request header's value ("" when absent).
	Header func(name string) string
	Body   []byte
	// Received is when the call arrived, for signature freshness checks.
	Received time.Time
}

// Response is what the webhook answers.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// OK is the answer to a delivery that was stored (or knowingly ignored).
func OK() Response {
	return Response{Status: http.StatusOK, ContentType: "application/json", Body: []byte(`{"ok":true}`)}
}

// Text is a plain-text answer, such as a subscription challenge echo.
func Text(status int, body string) Response {
	return Response{Status: status, ContentType: "text/plain; charset=utf-8", Body: []byte(body)}
}

// Webhook is one provider's webhook endpoint. The HTTP layer has already
// found the channel (a deleted or unknown one answers 404 before this is
// called) and checked the body size. Errors are *inbox.Error values:
// unauthorized for a bad or missing signature, invalid for a body that
// cannot be understood, anything else as the inbox service reports it.
// Nothing is stored unless the call succeeds, and success means what the
// call carried is durably stored.
type Webhook interface {
	Handle(ctx context.Context, ch inbox.Channel, r Request) (Response, error)
}

// ErrSignature is the answer to a missing, malformed or wrong signature.
// It says no more than that, so a forger learns nothing.
func ErrSignature(provider string) error {
	return inbox.Errorf(inbox.CodeUnauthorized, "missing or invalid %s signature", provider)
}

// Malformed reports a body that is not what the provider sends.
func Malformed(format string, args ...any) error {
	return inbox.Errorf(inbox.CodeInvalid, format, args...)
}

// HMACSHA256 is the MAC of the concatenated parts under secret.
func HMACSHA256(secret string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// EqualHex reports, in constant time for a well-formed candidate, whether
// a hex-encoded signature equals mac. Case is ignored, as providers differ.
func EqualHex(candidate string, mac []byte) bool {
	candidate = strings.TrimSpace(candidate)
	if len(candidate) != 2*len(mac) {
		return false
	}
	got := make([]byte, len(mac))
	if _, err := hex.Decode(got, []byte(candidate)); err != nil {
		return false
	}
	return hmac.Equal(got, mac)
}

// BodyHash identifies a body in logs without quoting it: bodies carry
// customers' messages.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:8])
}
