package whatsapp

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// Inbox is what the webhook needs of the inbox service.
type Inbox interface {
	Receive(ctx context.Context, channelID string, batch []inbox.Inbound) ([]inbox.Received, error)
	ReportStatus(ctx context.Context, channelID string, reports []inbox.StatusReport) error
	ExternalIDsKnown(ctx context.Context, channelID string, ids []string) (map[string]bool, error)
}

// WebhookConfig wires a Webhook. Inbox is required.
type WebhookConfig struct {
	Inbox Inbox
	// Files fetches customers' attachments into the media store; with no
	// Media, a note stands in their place. Zero limits take the defaults.
	Files  channel.Fetcher
	Logger *slog.Logger
}

// Webhook is the WhatsApp Cloud API webhook: GET answers Meta's
// subscription check, POST takes deliveries.
type Webhook struct {
	inbox Inbox
	files channel.Fetcher
	log   *slog.Logger
}

var _ channel.Webhook = (*Webhook)(nil)

// NewWebhook fills in cfg's defaults.
func NewWebhook(cfg WebhookConfig) *Webhook {
	w := &Webhook{inbox: cfg.Inbox, log: cfg.Logger, files: cfg.Files.WithDefaults()}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w
}

// maxChallenge bounds the echoed hub.challenge (Meta's is a short number).
const maxChallenge = 1024

// Handle serves one call for channel ch.
func (w *Webhook) Handle(ctx context.Context, ch inbox.Channel, r channel.Request) (channel.Response, error) {
	acct := accountOf(ch)
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return verify(acct, r)
	}
	if err := VerifySignature(acct.appSecret, r.Header(SignatureHeader), r.Body); err != nil {
		return channel.Response{}, err
	}
	n, err := Parse(r.Body, acct.phoneNumberID)
	if err != nil {
		return channel.Response{}, err
	}
	if n.Foreign > 0 {
		w.log.Warn("whatsapp: webhook carried changes for another phone number; give that number its own channel and callback URL",
			"channel", ch.ID, "changes", n.Foreign)
	}
	if len(n.Messages) > 0 {
		batch, err := w.withMedia(ctx, acct, ch, n.Messages)
		if err != nil {
			return channel.Response{}, err
		}
		if _, err := w.inbox.Receive(ctx, ch.ID, batch); err != nil {
			return channel.Response{}, err
		}
	}
	if len(n.Statuses) > 0 {
		if err := w.inbox.ReportStatus(ctx, ch.ID, n.Statuses); err != nil {
			return channel.Response{}, err
		}
	}
	return channel.OK(), nil
}

// verify answers the subscription check: the challenge, raw, when the
// mode is subscribe and the token is the channel's; 403 otherwise.
func verify(acct account, r channel.Request) (channel.Response, error) {
	q := r.Query
	token := q.Get("hub.verify_token")
	challenge := q.Get("hub.challenge")
	ok := q.Get("hub.mode") == "subscribe" && acct.verifyToken != "" &&
		subtle.ConstantTimeCompare([]byte(token), []byte(acct.verifyToken)) == 1
	if !ok || challenge == "" || len(challenge) > maxChallenge {
		return channel.Response{}, inbox.Errorf(inbox.CodeForbidden, "the verify token does not match this channel's")
	}
	return channel.Text(http.StatusOK, challenge), nil
}
