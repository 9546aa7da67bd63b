package tiktok

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// MaxText is the longest text message TikTok takes.
const MaxText = 950

// DefaultLimits stay under the Business Messaging API's 10 requests a
// second per account.
var DefaultLimits = channel.Limits{Concurrency: 4, PerSecond: 8, Burst: 8}

// Aliases records extra provider ids of a reply sent as several messages.
type Aliases interface {
	AddExternalID(ctx context.Context, channelID, messageID, externalID string) error
}

// SenderConfig wires a Sender.
type SenderConfig struct {
	// Media gives the bytes of images to upload; nil fails replies that
	// carry one.
	Media channel.MediaSource
	// Aliases keeps the id of a caption sent after its image; nil skips it.
	Aliases  Aliases
	Client   *http.Client
	MaxMedia int64
	Now      func() time.Time
}

// Sender sends replies through the Business Messaging API.
type Sender struct {
	media    channel.MediaSource
	aliases  Aliases
	client   *http.Client
	maxMedia int64
	now      func() time.Time
}

var _ inbox.Sender = (*Sender)(nil)

// NewSender fills in cfg's defaults.
func NewSender(cfg SenderConfig) *Sender {
	s := &Sender{media: cfg.Media, aliases: cfg.Aliases, client: cfg.Client, maxMedia: cfg.MaxMedia, now: cfg.Now}
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

// Send delivers a reply into the customer's TikTok conversation: its
// image first when it has one, then its text. It returns the id of the
// first message TikTok created.
func (s *Sender) Send(ctx context.Context, g inbox.Outgoing) (string, error) {
	if g.Item.Kind == inbox.OutboxRead {
		return "", nil // TikTok shows no read receipts from businesses
	}
	acct := accountOf(g.Channel)
	if err := inbox.WindowCheck(inbox.ChannelTikTok, g.LastInboundAt, s.now()); err != nil {
		var ie *inbox.Error
		errors.As(err, &ie)
		return "", &inbox.SendError{Code: string(inbox.CodeWindowClosed), Message: ie.Message}
	}
	conv := g.Contact.ReplyTo
	if conv == "" {
		return "", &inbox.SendError{Code: "no_conversation", Message: "TikTok has not told OneBox which conversation this customer writes from; they must write again"}
	}
	text := channel.ReplyText(g.Message)
	if n := utf8.RuneCountInString(text); n > MaxText {
		return "", &inbox.SendError{Code: "too_long", Message: fmt.Sprintf("TikTok messages are at most %d characters; this one has %d", MaxText, n)}
	}
	md := channel.ReplyMedia(g.Message)
	if md == nil && strings.TrimSpace(text) == "" {
		return "", &inbox.SendError{Code: "empty", Message: "the reply has nothing to send"}
	}
	var first string
	if md != nil {
		mediaID, err := s.upload(ctx, acct, g.Channel.TenantID, md)
		if err != nil {
			return "", err
		}
		first, err = s.send(ctx, acct, map[string]any{
			"business_id": acct.businessID, "recipient_type": "CONVERSATION", "recipient": conv,
			"message_type": "IMAGE", "image": map[string]string{"media_id": mediaID},
		})
		if err != nil {
			return "", err
		}
		if strings.TrimSpace(text) == "" {
			return first, nil
		}
	}
	id, err := s.send(ctx, acct, map[string]any{
		"business_id": acct.businessID, "recipient_type": "CONVERSATION", "recipient": conv,
		"message_type": "TEXT", "text": map[string]string{"body": text},
	})
	if first == "" {
		return id, err
	}
	// The image is out: the reply counts as sent even if its caption is
	// not, since sending again would repeat the image.
	if err == nil && id != "" && s.aliases != nil {
		_ = s.aliases.AddExternalID(ctx, g.Channel.ID, g.Message.ID, id)
	}
	return first, nil
}

// upload sends an image to TikTok and returns its media id.
func (s *Sender) upload(ctx context.Context, acct account, tenantID string, md *inbox.Media) (string, error) {
	if s.media == nil {
		return "", &inbox.SendError{Code: "media_unavailable", Message: "this server cannot send attachments"}
	}
	rc, rec, err := s.media.Open(ctx, tenantID, md.ID)
	if err != nil {
		if inbox.ErrorCode(err) == inbox.CodeNotFound {
			return "", &inbox.SendError{Code: "media_missing", Message: "the attachment no longer exists"}
		}
		return "", &inbox.SendError{Code: "media_unavailable", Message: "the attachment could not be read; will retry", Temporary: true}
	}
	defer rc.Close()
	mime := rec.Mime
	if mime == "" {
		mime = md.Mime
	}
	if mime != "image/jpeg" && mime != "image/png" {
		return "", &inbox.SendError{Code: "unsupported_media", Message: "TikTok can only send JPEG and PNG images"}
	}
	name := md.Name
	if name == "" {
		name = "image." + strings.TrimPrefix(mime, "image/")
	}
	req, err := channel.Upload(acct.api("media/upload/"),
		[][2]string{{"business_id", acct.businessID}, {"media_type", "IMAGE"}}, "file", name, mime, rc, s.maxMedia)
	if err != nil {
		if errors.Is(err, channel.ErrTooLarge) {
			return "", &inbox.SendError{Code: "too_large", Message: "the image is over the size limit"}
		}
		return "", &inbox.SendError{Code: "media_unavailable", Message: "the attachment could not be read; will retry", Temporary: true}
	}
	req.Header.Set("Access-Token", acct.accessToken)
	var data struct {
		MediaID string `json:"media_id"`
	}
	if err := s.do(ctx, req, &data); err != nil {
		return "", err
	}
	if data.MediaID == "" {
		return "", &inbox.SendError{Code: "bad_answer", Message: "TikTok took the image but gave no media id; will retry", Temporary: true}
	}
	return data.MediaID, nil
}

// send posts one message and returns its id.
func (s *Sender) send(ctx context.Context, acct account, body any) (string, error) {
	req, err := channel.PostJSON(acct.api("send/"), body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Access-Token", acct.accessToken)
	var data struct {
		Message struct {
			MessageID string `json:"message_id"`
		} `json:"message"`
	}
	if err := s.do(ctx, req, &data); err != nil {
		return "", err
	}
	return data.Message.MessageID, nil
}

// answer is the Business API's envelope: code 0 is success, anything else
// a failure whatever the HTTP status.
type answer struct {
	Code      int             `json:"code"`
	Message   string          `json:"message"`
	RequestID string          `json:"request_id"`
	Data      json.RawMessage `json:"data"`
}

// temporary reports whether a Business API code means "try later": rate
// limits and TikTok's own failures.
func temporary(code int) bool {
	return code == 40100 || code == 40016 || code >= 50000 && code < 60000
}

func (s *Sender) do(ctx context.Context, req *http.Request, data any) error {
	a, err := channel.Do(ctx, s.client, req, "TikTok")
	if err != nil {
		return err
	}
	return s.read(a, data)
}

// read turns the Business API's answer into nil, with the envelope's data
// decoded into data, or the SendError it means. It is apart from the call
// so that the parsing of answers can be exercised on its own.
func (s *Sender) read(a channel.Answer, data any) error {
	var ans answer
	jsonErr := json.Unmarshal(a.Body, &ans)
	if a.Status < 200 || a.Status >= 300 {
		code, msg := "", ""
		if jsonErr == nil && ans.Code != 0 {
			code, msg = strconv.Itoa(ans.Code), "TikTok: "+ans.Message
		}
		return channel.StatusError("TikTok", a, code, msg, s.now())
	}
	if jsonErr != nil {
		return &inbox.SendError{Code: "bad_answer", Message: "TikTok's answer could not be read"}
	}
	if ans.Code != 0 {
		msg := strings.TrimSpace(ans.Message)
		if msg == "" {
			msg = "the request was refused"
		}
		return &inbox.SendError{Code: strconv.Itoa(ans.Code), Message: "TikTok: " + msg, Temporary: temporary(ans.Code)}
	}
	if data != nil && len(ans.Data) > 0 {
		if err := json.Unmarshal(ans.Data, data); err != nil {
			return &inbox.SendError{Code: "bad_answer", Message: "TikTok's answer could not be read"}
		}
	}
	return nil
}
