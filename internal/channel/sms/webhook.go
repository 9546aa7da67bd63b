package sms

import (
	"context"
	"net/http"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// Inbox is what the webhook needs of the inbox service.
type Inbox interface {
	Receive(ctx context.Context, channelID string, batch []inbox.Inbound) ([]inbox.Received, error)
	ReportStatus(ctx context.Context, channelID string, reports []inbox.StatusReport) error
}

// Webhook is the SMS gateway's webhook.
type Webhook struct {
	inbox Inbox
}

var _ channel.Webhook = (*Webhook)(nil)

// NewWebhook returns the webhook storing into in.
func NewWebhook(in Inbox) *Webhook { return &Webhook{inbox: in} }

// Handle takes one callback for channel ch.
func (w *Webhook) Handle(ctx context.Context, ch inbox.Channel, r channel.Request) (channel.Response, error) {
	if r.Method != http.MethodPost {
		return channel.Response{}, inbox.Errorf(inbox.CodeInvalid, "SMS gateway callbacks are POSTed")
	}
	if err := VerifySignature(ch.Config["webhook_secret"], r.Header(SignatureHeader), r.Body); err != nil {
		return channel.Response{}, err
	}
	cb, err := Parse(r.Body)
	if err != nil {
		return channel.Response{}, err
	}
	if cb.Status != nil {
		if err := w.inbox.ReportStatus(ctx, ch.ID, []inbox.StatusReport{*cb.Status}); err != nil {
			return channel.Response{}, err
		}
		return channel.OK(), nil
	}
	if _, err := w.inbox.Receive(ctx, ch.ID, []inbox.Inbound{*cb.Inbound}); err != nil {
		return channel.Response{}, err
	}
	return channel.OK(), nil
}
