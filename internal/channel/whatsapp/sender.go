package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// Limits of the Cloud API on what one message carries.
const (
	MaxText    = 4096
	MaxCaption = 1024
)

// DefaultLimits are the Cloud API's default throughput for one business
// phone number (80 messages a second), with room for a few slow calls.
var DefaultLimits = channel.Limits{Concurrency: 16, PerSecond: 80, Burst: 80}

// SenderConfig wires a Sender.
type SenderConfig struct {
	// Media gives the bytes of attachments to upload; nil fails replies
	// that carry one.
	Media  channel.MediaSource
	Client *http.Client
	// MaxMedia caps an uploaded attachment (default channel.DefaultMaxMedia).
	MaxMedia int64
	Now      func() time.Time
}

// Sender sends replies and read receipts through the Cloud API.
type Sender struct {
	media    channel.MediaSource
	client   *http.Client
	maxMedia int64
	now      func() time.Time
}

var _ inbox.Sender = (*Sender)(nil)

// NewSender fills in cfg's defaults.
func NewSender(cfg SenderConfig) *Sender {
	s := &Sender{media: cfg.Media, client: cfg.Client, maxMedia: cfg.MaxMedia, now: cfg.Now}
	if s.client == nil {
		s.client = channel.NewHTTPClient()
	}
	if s.maxMedia <= 0 {
		s.maxMedia = channel.DefaultMaxMedia
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Send hands one outbox item to WhatsApp: a reply (text, or an attachment
// with its caption) or a read receipt. It returns the message's wamid.
func (s *Sender) Send(ctx context.Context, g inbox.Outgoing) (string, error) {
	acct := accountOf(g.Channel)
	if g.Item.Kind == inbox.OutboxRead {
		return "", s.markRead(ctx, acct, g.Message.ExternalID)
	}
	if err := inbox.WindowCheck(inbox.ChannelWhatsApp, g.LastInboundAt, s.now()); err != nil {
		var ie *inbox.Error
		errors.As(err, &ie)
		return "", &inbox.SendError{Code: string(inbox.CodeWindowClosed), Message: ie.Message}
	}
	body, err := s.build(ctx, acct, g)
	if err != nil {
		return "", err
	}
	var ok sendAnswer
	if err := s.call(ctx, acct, body, &ok); err != nil {
		return "", err
	}
	return ok.id(), nil
}

// sendAnswer is the Graph API's answer to an accepted message.
type sendAnswer struct {
	Messages []struct {
		ID string `json:"id"`
	} `json:"messages"`
}

// id is the accepted message's wamid; empty when WhatsApp gave none to
// follow its statuses by.
func (a sendAnswer) id() string {
	if len(a.Messages) == 0 {
		return ""
	}
	return a.Messages[0].ID
}

// build makes the message object for a reply.
func (s *Sender) build(ctx context.Context, acct account, g inbox.Outgoing) (map[string]any, error) {
	text := channel.ReplyText(g.Message)
	body := map[string]any{
		"messaging_product": "whatsapp",
		"recipient_type":    "individual",
		"to":                g.Contact.Handle,
	}
	md := channel.ReplyMedia(g.Message)
	if md == nil {
		if strings.TrimSpace(text) == "" {
			return nil, &inbox.SendError{Code: "empty", Message: "the reply has nothing to send"}
		}
		if n := utf8.RuneCountInString(text); n > MaxText {
			return nil, &inbox.SendError{Code: "too_long", Message: fmt.Sprintf("WhatsApp messages are at most %d characters; this one has %d", MaxText, n)}
		}
		body["type"] = "text"
		body["text"] = map[string]any{"preview_url": false, "body": text}
		return body, nil
	}
	id, mime, name, err := s.upload(ctx, acct, g.Channel.TenantID, md)
	if err != nil {
		return nil, err
	}
	kind := mediaKind(mime)
	if kind == "audio" && text != "" {
		kind = "document" // audio takes no caption; a document does
	}
	obj := map[string]any{"id": id}
	if text != "" {
		if n := utf8.RuneCountInString(text); n > MaxCaption {
			return nil, &inbox.SendError{Code: "too_long", Message: fmt.Sprintf("WhatsApp captions are at most %d characters; this one has %d", MaxCaption, n)}
		}
		obj["caption"] = text
	}
	if kind == "document" && name != "" {
		obj["filename"] = name
	}
	body["type"] = kind
	body[kind] = obj
	return body, nil
}

// mediaKind is the WhatsApp message type for an attachment's MIME type.
func mediaKind(mime string) string {
	switch m := strings.ToLower(mime); {
	case m == "image/jpeg" || m == "image/png":
		return "image"
	case m == "video/mp4" || m == "video/3gpp":
		return "video"
	case strings.HasPrefix(m, "audio/"):
		return "audio"
	}
	return "document"
}

// upload sends an attachment to the phone number's media endpoint and
// returns its media id.
func (s *Sender) upload(ctx context.Context, acct account, tenantID string, md *inbox.Media) (id, mime, name string, err error) {
	if s.media == nil {
		return "", "", "", &inbox.SendError{Code: "media_unavailable", Message: "this server cannot send attachments"}
	}
	rc, rec, err := s.media.Open(ctx, tenantID, md.ID)
	if err != nil {
		if inbox.ErrorCode(err) == inbox.CodeNotFound {
			return "", "", "", &inbox.SendError{Code: "media_missing", Message: "the attachment no longer exists"}
		}
		return "", "", "", &inbox.SendError{Code: "media_unavailable", Message: "the attachment could not be read; will retry", Temporary: true}
	}
	defer rc.Close()
	mime, name = firstNonEmpty(rec.Mime, md.Mime), firstNonEmpty(md.Name, rec.Name)
	req, err := channel.Upload(acct.graph(acct.phoneNumberID+"/media"),
		[][2]string{{"messaging_product", "whatsapp"}, {"type", firstNonEmpty(mime, "application/octet-stream")}},
		"file", firstNonEmpty(name, "attachment"), mime, rc, s.maxMedia)
	if err != nil {
		if errors.Is(err, channel.ErrTooLarge) {
			return "", "", "", &inbox.SendError{Code: "too_large", Message: "the attachment is over the size limit"}
		}
		return "", "", "", &inbox.SendError{Code: "media_unavailable", Message: "the attachment could not be read; will retry", Temporary: true}
	}
	req.Header.Set("Authorization", "Bearer "+acct.accessToken)
	var ok struct {
		ID string `json:"id"`
	}
	if err := s.do(ctx, req, &ok); err != nil {
		return "", "", "", err
	}
	if ok.ID == "" {
		return "", "", "", &inbox.SendError{Code: "media_rejected", Message: "WhatsApp accepted the attachment but gave no id; will retry", Temporary: true}
	}
	return ok.ID, mime, name, nil
}

// markRead tells WhatsApp the customer's messages up to this one were read.
func (s *Sender) markRead(ctx context.Context, acct account, wamid string) error {
	if wamid == "" {
		return nil
	}
	return s.call(ctx, acct, map[string]any{"messaging_product": "whatsapp", "status": "read", "message_id": wamid}, nil)
}

// call posts a JSON body to the phone number's messages endpoint.
func (s *Sender) call(ctx context.Context, acct account, body any, out any) error {
	req, err := channel.PostJSON(acct.graph(acct.phoneNumberID+"/messages"), body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+acct.accessToken)
	return s.do(ctx, req, out)
}

// graphError is the Graph API's error answer.
type graphError struct {
	Error struct {
		Message      string `json:"message"`
		Type         string `json:"type"`
		Code         flex   `json:"code"`
		ErrorSubcode flex   `json:"error_subcode"`
		ErrorData    struct {
			Details string `json:"details"`
		} `json:"error_data"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

// temporaryCodes are Graph API error codes that mean "not now" rather
// than "never", whatever the HTTP status they come with: throttling, and
// Meta's own outages.
var temporaryCodes = map[string]bool{
	"1": true, "2": true, "4": true, "17": true, "32": true, "613": true,
	"80007": true, "130429": true, "131000": true, "131016": true,
	"131048": true, "131056": true, "133004": true,
}

func (s *Sender) do(ctx context.Context, req *http.Request, out any) error {
	a, err := channel.Do(ctx, s.client, req, "WhatsApp")
	if err != nil {
		return err
	}
	return s.read(a, out)
}

// read turns the Graph API's answer into nil, with a 2xx body decoded into
// out, or the SendError it means. It is apart from the call so that the
// parsing of answers can be exercised on its own.
func (s *Sender) read(a channel.Answer, out any) error {
	if a.Status >= 200 && a.Status < 300 {
		if out != nil && len(a.Body) > 0 {
			if err := json.Unmarshal(a.Body, out); err != nil {
				return &inbox.SendError{Code: "bad_answer", Message: "WhatsApp accepted the message but its answer could not be read"}
			}
		}
		return nil
	}
	var ge graphError
	_ = json.Unmarshal(a.Body, &ge)
	code := string(ge.Error.Code)
	msg := ge.Error.Message
	if d := ge.Error.ErrorData.Details; d != "" && !strings.Contains(msg, d) {
		msg = strings.TrimSpace(msg + ": " + d)
	}
	if msg != "" {
		msg = "WhatsApp: " + msg
	}
	se := channel.StatusError("WhatsApp", a, code, msg, s.now())
	if temporaryCodes[code] {
		se.Temporary = true
		if se.RetryAfter == 0 && (code == "131056" || code == "130429" || code == "80007" || code == "4") {
			se.RetryAfter = 6 * time.Second // the pair rate limit allows one message per six seconds
		}
	}
	return se
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
