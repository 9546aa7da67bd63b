package tiktok

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// Inbox is what the webhook needs of the inbox service.
type Inbox interface {
	Receive(ctx context.Context, channelID string, batch []inbox.Inbound) ([]inbox.Received, error)
	RecordEchoes(ctx context.Context, channelID string, batch []inbox.Inbound) ([]inbox.Received, error)
	ReadUpTo(ctx context.Context, channelID, handle string, at time.Time) (int, error)
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

// Webhook is the TikTok Business Messaging webhook.
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

// Handle takes one delivery for channel ch.
func (w *Webhook) Handle(ctx context.Context, ch inbox.Channel, r channel.Request) (channel.Response, error) {
	if r.Method != http.MethodPost {
		return channel.Response{}, inbox.Errorf(inbox.CodeInvalid, "TikTok webhooks are POSTed")
	}
	acct := accountOf(ch)
	now := r.Received
	if now.IsZero() {
		now = time.Now()
	}
	if err := VerifySignature(acct.clientSecret, r.Header(SignatureHeader), r.Body, now); err != nil {
		return channel.Response{}, err
	}
	ev, err := Parse(r.Body)
	if err != nil {
		return channel.Response{}, err
	}
	if ev.Business != "" && ev.Business != acct.businessID {
		w.log.Warn("tiktok: webhook for another business account ignored", "channel", ch.ID)
		return channel.OK(), nil
	}
	switch {
	case ev.Read != nil:
		if ev.Read.UserID == acct.businessID {
			return channel.OK(), nil // the business reading: nothing to show
		}
		if _, err := w.inbox.ReadUpTo(ctx, ch.ID, ev.Read.UserID, ev.Read.Until); err != nil {
			return channel.Response{}, err
		}
	case ev.Message != nil:
		if err := w.message(ctx, acct, ch, ev.Message); err != nil {
			return channel.Response{}, err
		}
	default:
		w.log.Debug("tiktok: event ignored", "channel", ch.ID, "event", ev.Name)
	}
	return channel.OK(), nil
}

// message stores a message in either direction: sent by the business
// (from TikTok's app, or the echo of our own send) or by a customer.
func (w *Webhook) message(ctx context.Context, acct account, ch inbox.Channel, m *Message) error {
	outbound := m.FromID == acct.businessID
	in := inbox.Inbound{ExternalID: m.ID, Kind: m.Kind, Text: m.Text, At: m.At, ContactReplyTo: m.ConversationID}
	if outbound {
		in.ContactHandle, in.ContactName = m.ToID, m.To
	} else {
		in.ContactHandle, in.ContactName = m.FromID, m.From
	}
	if m.MediaID != "" {
		known, err := w.inbox.ExternalIDsKnown(ctx, ch.ID, []string{m.ID})
		if err != nil {
			return err
		}
		if !known[m.ID] {
			md, err := w.fetch(ctx, acct, ch.TenantID, m)
			if err != nil {
				w.log.Warn("tiktok: image not kept", "channel", ch.ID, "message", m.ID, "err", err)
				in.Kind, in.Text = inbox.KindText, fmt.Sprintf("[Image not available: %v]", err)
			} else {
				in.Media = md
			}
		}
	}
	if outbound {
		_, err := w.inbox.RecordEchoes(ctx, ch.ID, []inbox.Inbound{in})
		return err
	}
	_, err := w.inbox.Receive(ctx, ch.ID, []inbox.Inbound{in})
	return err
}

// fetch asks the API for the image's download link and keeps the image.
func (w *Webhook) fetch(ctx context.Context, acct account, tenantID string, m *Message) (*inbox.Media, error) {
	ctx, cancel, err := w.files.Start(ctx)
	defer cancel()
	if err != nil {
		return nil, err
	}
	req, err := channel.PostJSON(acct.api("media/download/"), map[string]string{
		"business_id": acct.businessID, "conversation_id": m.ConversationID,
		"message_id": m.ID, "media_id": m.MediaID, "media_type": "IMAGE",
	})
	if err != nil {
		return nil, err
	}
	req.Header.Set("Access-Token", acct.accessToken)
	a, err := channel.Do(ctx, w.files.Client, req, "TikTok")
	if err != nil {
		return nil, fmt.Errorf("could not reach TikTok")
	}
	link, err := downloadLink(a)
	if err != nil {
		return nil, err
	}
	dl, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil || (dl.URL.Scheme != "https" && dl.URL.Scheme != "http") {
		return nil, fmt.Errorf("TikTok gave a bad download link")
	}
	return w.files.Download(ctx, tenantID, dl, "", "", func(resp *http.Response) string {
		mime, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
		if mime = strings.TrimSpace(mime); mime == "" || mime == "application/octet-stream" {
			mime = "image/jpeg"
		}
		return mime
	}, w.log)
}

// downloadLink reads the API's answer to a media download request: the
// image's link, or an error saying what came instead.
func downloadLink(a channel.Answer) (string, error) {
	var ans struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			DownloadURL string `json:"download_url"`
		} `json:"data"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &ans) != nil || ans.Code != 0 || ans.Data.DownloadURL == "" {
		return "", fmt.Errorf("TikTok gave no download link (HTTP %d, code %d)", a.Status, ans.Code)
	}
	return ans.Data.DownloadURL, nil
}
