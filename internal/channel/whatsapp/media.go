package whatsapp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// withMedia fetches the attachments of a delivery's messages and returns
// the batch to store. An attachment that cannot be kept (too large, gone,
// the Graph API down) leaves a note in the message instead: the message
// itself is never dropped, and the webhook still succeeds. Messages
// stored before (a redelivery) are not fetched again.
func (w *Webhook) withMedia(ctx context.Context, acct account, ch inbox.Channel, msgs []Inbound) ([]inbox.Inbound, error) {
	var ids []string
	for _, m := range msgs {
		if m.MediaID != "" {
			ids = append(ids, m.ExternalID)
		}
	}
	var known map[string]bool
	if len(ids) > 0 {
		var err error
		if known, err = w.inbox.ExternalIDsKnown(ctx, ch.ID, ids); err != nil {
			return nil, err
		}
	}
	batch := make([]inbox.Inbound, len(msgs))
	for i, m := range msgs {
		batch[i] = m.Inbound
		if m.MediaID == "" || known[m.ExternalID] {
			continue
		}
		md, err := w.fetch(ctx, acct, ch.TenantID, m)
		if err != nil {
			w.log.Warn("whatsapp: attachment not kept", "channel", ch.ID, "message", m.ExternalID, "err", err)
			batch[i].Kind = inbox.KindText
			batch[i].Text = joinText(fmt.Sprintf("[%s not available: %v]", title(m.MediaFor), err), m.Text)
			continue
		}
		batch[i].Media = md
	}
	return batch, nil
}

// mediaInfo is the Graph API's description of an attachment.
type mediaInfo struct {
	URL      string `json:"url"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	FileSize flex   `json:"file_size"`
	ID       string `json:"id"`
}

// fetch resolves the media id to a download URL, downloads it with the
// channel's token and keeps it in the media store.
func (w *Webhook) fetch(ctx context.Context, acct account, tenantID string, m Inbound) (*inbox.Media, error) {
	ctx, cancel, err := w.files.Start(ctx)
	defer cancel()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, acct.graph(m.MediaID), nil)
	if err != nil {
		return nil, fmt.Errorf("bad attachment id")
	}
	req.Header.Set("Authorization", "Bearer "+acct.accessToken)
	a, err := channel.Do(ctx, w.files.Client, req, "WhatsApp")
	if err != nil {
		return nil, fmt.Errorf("could not reach WhatsApp")
	}
	info, err := readMediaInfo(a, w.files.Max)
	if err != nil {
		return nil, err
	}
	dl, err := http.NewRequestWithContext(ctx, http.MethodGet, info.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("WhatsApp gave a bad download link")
	}
	// The download URL only works with the channel's token.
	dl.Header.Set("Authorization", "Bearer "+acct.accessToken)
	mime := info.MimeType
	if mime == "" {
		mime = m.Mime
	}
	return w.files.Download(ctx, tenantID, dl, m.Filename, mime, nil, w.log)
}

// readMediaInfo reads the Graph API's answer to a media id lookup: the
// attachment's download link and type, or why it cannot be kept (the
// lookup failed, the answer makes no sense, or the file is over limit).
func readMediaInfo(a channel.Answer, limit int64) (mediaInfo, error) {
	if a.Status != http.StatusOK {
		return mediaInfo{}, fmt.Errorf("WhatsApp answered %d for the attachment", a.Status)
	}
	var info mediaInfo
	if err := json.Unmarshal(a.Body, &info); err != nil || !strings.HasPrefix(info.URL, "http") {
		return mediaInfo{}, fmt.Errorf("WhatsApp described the attachment in an unexpected way")
	}
	if size, err := strconv.ParseInt(string(info.FileSize), 10, 64); err == nil && size > limit {
		return mediaInfo{}, fmt.Errorf("it is %s, over the %s limit", channel.SizeText(size), channel.SizeText(limit))
	}
	return info, nil
}
