// Package push tells agents who have no open socket about new customer
// messages, through Web Push (the installed web app) and FCM (Android).
//
// It decides; the packages under it deliver. The Dispatcher is fed committed
// events after the live stream has had them (never on a request's path),
// waits briefly so a burst of messages becomes one notification, asks the
// inbox whom to notify from the state committed by then, and hands the
// notifications to one Sender per device kind (push/webpush, push/fcm).
package push

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Payload is what the app receives, per CONTRACT.md: enough to show a
// notification and to open the conversation; the app fetches anything else
// over the API. FCM carries the same fields as string values of data.
type Payload struct {
	TenantID       string `json:"tenant_id"`
	ConversationID string `json:"conversation_id"`
	Seq            uint64 `json:"seq"`
	Title          string `json:"title"`
	Body           string `json:"body"`
}

// Data is the payload as FCM's data map, whose values must be strings.
func (p Payload) Data() map[string]string {
	return map[string]string{
		"tenant_id":       p.TenantID,
		"conversation_id": p.ConversationID,
		"seq":             strconv.FormatUint(p.Seq, 10),
		"title":           p.Title,
		"body":            p.Body,
	}
}

// Notification is one push to one device.
type Notification struct {
	Payload Payload
	// Private means the tenant wants no message content to leave the
	// server: Title and Body are empty, and FCM gets a data-only message
	// so the app builds the notification after fetching the text.
	Private bool
	// Topic names the conversation to the push service (Web Push Topic,
	// FCM collapse key): a newer push replaces an older one not yet shown.
	Topic string
	// Urgent asks the push service to deliver even on a low battery.
	Urgent bool
	// TTL is how long the push service keeps it for a device that is off.
	TTL time.Duration
}

// Outcome classifies what a push service answered.
type Outcome int

const (
	// Delivered: the service accepted the push.
	Delivered Outcome = iota
	// Gone: the device no longer exists (unsubscribed, app removed); it is
	// forgotten.
	Gone
	// Retry: the service is busy or down; try again later.
	Retry
	// Rejected: the service refused this request (bad credentials, bad
	// payload). That is the server's fault, not the device's, so the
	// device is kept and the refusal logged.
	Rejected
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Gone:
		return "gone"
	case Retry:
		return "retry"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Result is a Sender's answer.
type Result struct {
	Outcome Outcome
	// RetryAfter is the service's own wait (Retry-After), when it gave one.
	RetryAfter time.Duration
	// Status is the HTTP status, when there was a response.
	Status int
	// Err explains Retry and Rejected for the log. It never holds the
	// endpoint or token, which are capabilities.
	Err error
}

// Sender delivers to one kind of device. Send must honour ctx and must not
// retry on its own beyond what its library does: the Dispatcher owns
// retries so it can stop before a push goes stale.
type Sender interface {
	Send(ctx context.Context, d inbox.PushDevice, n Notification) Result
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, d inbox.PushDevice, n Notification) Result

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, d inbox.PushDevice, n Notification) Result {
	return f(ctx, d, n)
}

// Topic derives a conversation's Web Push Topic / FCM collapse key. RFC 8030
// allows at most 32 characters of the URL-safe base64 alphabet; hashing also
// keeps ids out of push services' logs.
func Topic(tenantID, conversationID string) string {
	sum := sha256.Sum256([]byte(tenantID + "/" + conversationID))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:32]
}

// ParseRetryAfter reads a Retry-After header: seconds or an HTTP date. Zero
// means absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return maxRetryAfter
	}
	if err == nil {
		if n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// maxRetryAfter caps what a push service may ask: a wait beyond a day is
// not a pause any more, and a huge number must not wrap around to a short
// (or negative) one.
const maxRetryAfter = 24 * time.Hour
