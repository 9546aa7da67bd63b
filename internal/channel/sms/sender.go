package sms

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// DefaultLimits suit a typical gateway account; a gateway that allows
// more still gets everything, a little later.
var DefaultLimits = channel.Limits{Concurrency: 4, PerSecond: 10, Burst: 10}

// SenderConfig wires a Sender.
type SenderConfig struct {
	Client *http.Client
	Now    func() time.Time
}

// Sender posts replies to the channel's gateway. The gateway gets
// OneBox's message id, so it can deduplicate a send repeated after a
// crash (see channel.GuardConfig.Idempotent).
type Sender struct {
	client *http.Client
	now    func() time.Time
}

var _ inbox.Sender = (*Sender)(nil)

// NewSender fills in cfg's defaults.
func NewSender(cfg SenderConfig) *Sender {
	s := &Sender{client: cfg.Client, now: cfg.Now}
	if s.client == nil {
		s.client = channel.NewHTTPClient()
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Send posts {"id","from","to","text"} with the channel's auth token. The
// text goes whole, however many SMS segments it takes: splitting is the
// gateway's job, which knows the encoding. A 2xx answer's id becomes the
// message's external id; 429 and 5xx are retried; other 4xx fail it.
func (s *Sender) Send(ctx context.Context, g inbox.Outgoing) (string, error) {
	if g.Item.Kind == inbox.OutboxRead {
		return "", nil
	}
	if channel.ReplyMedia(g.Message) != nil && g.Message.Product == nil {
		return "", &inbox.SendError{Code: "unsupported_media", Message: "SMS cannot carry images or files; send the text on its own"}
	}
	text := channel.ReplyText(g.Message)
	if strings.TrimSpace(text) == "" {
		return "", &inbox.SendError{Code: "empty", Message: "the reply has nothing to send"}
	}
	req, err := channel.PostJSON(g.Channel.Config["send_url"], map[string]string{
		"id": g.Message.ID, "from": g.Channel.Config["from"], "to": g.Contact.Handle, "text": text,
	})
	if err != nil {
		return "", &inbox.SendError{Code: "bad_config", Message: "the channel's send_url is not usable"}
	}
	req.Header.Set("Authorization", "Bearer "+g.Channel.Config["auth_token"])
	a, err := channel.Do(ctx, s.client, req, "the SMS gateway")
	if err != nil {
		return "", err
	}
	return s.read(a)
}

// read turns the gateway's answer into the message's external id (empty
// when a 2xx carries none) or the SendError it means. It is apart from the
// call so that the parsing of answers can be exercised on its own.
func (s *Sender) read(a channel.Answer) (string, error) {
	if a.Status < 200 || a.Status >= 300 {
		return "", channel.StatusError("the SMS gateway", a, "", gatewayMessage(a.Body), s.now())
	}
	var ok struct {
		ID string `json:"id"`
	}
	if len(a.Body) > 0 {
		_ = json.Unmarshal(a.Body, &ok) // accepted either way; the id is a bonus
	}
	return strings.TrimSpace(ok.ID), nil
}

// gatewayMessage digs a reason out of an error answer: {"error":"..."},
// {"error":{"message":"..."}} or {"message":"..."}.
func gatewayMessage(body []byte) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(v.Error, &s) == nil && s != "" {
		return "SMS gateway: " + s
	}
	var o struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(v.Error, &o) == nil && o.Message != "" {
		return "SMS gateway: " + o.Message
	}
	if v.Message != "" {
		return "SMS gateway: " + v.Message
	}
	return ""
}
