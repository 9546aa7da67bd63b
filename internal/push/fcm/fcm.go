// Package fcm delivers pushes to the Android app through Firebase Cloud
// Messaging's HTTP v1 API, using the Firebase Admin SDK. It is the only
// package that imports firebase.google.com/go/v4.
package fcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/push"
)

// requestTimeout bounds one send. The SDK itself retries a 503 a few times
// within it; the Dispatcher retries anything longer.
const requestTimeout = 20 * time.Second

// Config selects the Firebase project and how to reach it.
type Config struct {
	// CredentialsFile is a service account's JSON key
	// (ONEBOX_FCM_CREDENTIALS).
	CredentialsFile string
	// ProjectID defaults to the service account's project.
	ProjectID string
	// Endpoint replaces Google's FCM endpoint (up to and including /v1),
	// for sandboxes and tests. Without credentials, requests are then sent
	// unauthenticated.
	Endpoint string
	Logger   *slog.Logger
}

// Enabled reports whether the configuration asks for FCM at all.
func (c Config) Enabled() bool { return c.CredentialsFile != "" || c.Endpoint != "" }

// Sender sends FCM messages. It implements push.Sender.
type Sender struct {
	client  *messaging.Client
	project string
	log     *slog.Logger
}

var _ push.Sender = (*Sender)(nil)

// New reads the credentials and builds the SDK's client.
func New(ctx context.Context, cfg Config) (*Sender, error) {
	if !cfg.Enabled() {
		return nil, errors.New("fcm: neither credentials nor an endpoint are configured")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var opts []option.ClientOption
	if cfg.CredentialsFile != "" {
		raw, project, err := readServiceAccount(cfg.CredentialsFile)
		if err != nil {
			return nil, err
		}
		if cfg.ProjectID == "" {
			cfg.ProjectID = project
		}
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, raw))
	}
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(strings.TrimRight(cfg.Endpoint, "/")))
		if cfg.CredentialsFile == "" {
			opts = append(opts, option.WithoutAuthentication())
		}
	}
	if cfg.ProjectID == "" {
		return nil, errors.New("fcm: a project id is needed (ONEBOX_FCM_PROJECT_ID, or a service account that names one)")
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("fcm: start the Firebase app: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: start the messaging client: %w", err)
	}
	return &Sender{client: client, project: cfg.ProjectID, log: cfg.Logger}, nil
}

// readServiceAccount checks that the file is a service account key, as
// Google advises before handing a credentials file to its libraries, and
// returns it with its project id.
func readServiceAccount(path string) ([]byte, string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("fcm: read credentials: %w", err)
	}
	var sa struct {
		Type        string `json:"type"`
		ProjectID   string `json:"project_id"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if err := json.Unmarshal(raw, &sa); err != nil {
		return nil, "", fmt.Errorf("fcm: credentials file %s is not JSON", path)
	}
	if sa.Type != "service_account" || sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, "", fmt.Errorf("fcm: credentials file %s is not a service account key", path)
	}
	return raw, sa.ProjectID, nil
}

// Project is the Firebase project messages are sent through.
func (s *Sender) Project() string { return s.project }

// message builds the FCM request for one device: high priority so a dozing
// phone wakes for a customer, the conversation as collapse key and
// notification tag so a newer push replaces an older one, the contract's
// payload as data for the app, and a title and body the system shows on its
// own. In private mode the message is data only: nothing readable leaves,
// and the app shows a notification after fetching the text.
func message(d inbox.PushDevice, n push.Notification) *messaging.Message {
	ttl := n.TTL
	priority := "normal"
	if n.Urgent {
		priority = "high"
	}
	m := &messaging.Message{
		Token: d.Token,
		Data:  n.Payload.Data(),
		Android: &messaging.AndroidConfig{
			Priority:    priority,
			CollapseKey: n.Topic,
			TTL:         &ttl,
		},
	}
	if !n.Private {
		m.Notification = &messaging.Notification{Title: n.Payload.Title, Body: n.Payload.Body}
		m.Android.Notification = &messaging.AndroidNotification{Tag: n.Topic}
	}
	return m
}

// Send delivers n to the device.
func (s *Sender) Send(ctx context.Context, d inbox.PushDevice, n push.Notification) push.Result {
	if d.Kind != inbox.PushFCM {
		return push.Result{Outcome: push.Rejected, Err: fmt.Errorf("fcm: device of kind %q", d.Kind)}
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := s.client.Send(ctx, message(d, n))
	return classify(err, time.Now())
}

// classify maps the SDK's error to what to do about the device.
func classify(err error, now time.Time) push.Result {
	if err == nil {
		return push.Result{Outcome: push.Delivered, Status: http.StatusOK}
	}
	r := push.Result{Err: fmt.Errorf("fcm: %w", err)}
	resp := errorutils.HTTPResponse(err)
	var body []byte
	if resp != nil {
		r.Status = resp.StatusCode
		if resp.Body != nil {
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		}
	}
	// Only a 4xx can say a device is gone: an error code in a 5xx (or any
	// other answer) comes from a failing FCM and must not cost the user
	// their notifications.
	refused := r.Status >= 400 && r.Status < 500
	switch {
	case refused && messaging.IsUnregistered(err):
		r.Outcome = push.Gone
	case refused && errorutils.IsInvalidArgument(err) && namesToken(err, body):
		// A token FCM cannot parse will never work.
		r.Outcome = push.Gone
	case messaging.IsQuotaExceeded(err), messaging.IsUnavailable(err), messaging.IsInternal(err),
		errorutils.IsResourceExhausted(err), errorutils.IsUnavailable(err), errorutils.IsInternal(err),
		errorutils.IsDeadlineExceeded(err), errorutils.IsCancelled(err):
		r.Outcome = push.Retry
	case resp == nil && errorutils.IsUnknown(err):
		// A network failure before any answer.
		r.Outcome = push.Retry
	case errors.Is(err, context.DeadlineExceeded):
		r.Outcome = push.Retry
	default:
		// Sender mismatch, third-party auth, bad credentials, a message
		// FCM refuses: the configuration is at fault, not the device.
		r.Outcome = push.Rejected
	}
	if r.Outcome == push.Retry && resp != nil {
		r.RetryAfter = push.ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return r
}

// namesToken reports whether an INVALID_ARGUMENT is about the registration
// token rather than another field of the message: FCM says so in its
// message text and in a BadRequest field violation on "message.token".
func namesToken(err error, body []byte) bool {
	if strings.Contains(strings.ToLower(err.Error()), "registration token") {
		return true
	}
	var e struct {
		Error struct {
			Details []struct {
				FieldViolations []struct {
					Field string `json:"field"`
				} `json:"fieldViolations"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	for _, d := range e.Error.Details {
		for _, v := range d.FieldViolations {
			if v.Field == "message.token" {
				return true
			}
		}
	}
	return false
}
