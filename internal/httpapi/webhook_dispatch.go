package httpapi

import (
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// webhook hands a provider's call to its channel adapter. The channel is
// looked up first, so a deleted or unknown channel (or one of another
// type) answers 404 whatever the body; the body size was checked by
// limitBody (413). The adapter checks the signature (401, nothing stored)
// and answers only once what the call carried is stored.
func (s *Server) webhook(c *fiber.Ctx, typ string) error {
	ctx := c.UserContext()
	ch, err := s.svc.ChannelByID(ctx, c.Params("channel_id"))
	if err != nil {
		return err
	}
	if ch.Type != typ {
		return inbox.Errorf(inbox.CodeNotFound, "channel not found")
	}
	h := s.webhooks[typ]
	if h == nil {
		return webhookNotImplemented(inbox.ProviderName(typ))
	}
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && !strings.EqualFold(enc, "identity") {
		return invalid("compressed webhook bodies are not accepted")
	}
	body := c.Body()
	query := url.Values{}
	c.Context().QueryArgs().VisitAll(func(k, v []byte) { query.Add(string(k), string(v)) })
	resp, err := h.Handle(ctx, ch, channel.Request{
		Method:   c.Method(),
		Query:    query,
		Header:   func(name string) string { return c.Get(name) },
		Body:     body,
		Received: time.Now(),
	})
	if err != nil {
		if inbox.ErrorCode(err) == inbox.CodeInvalid {
			// Our parser or their payload is wrong. The provider retries a
			// while and gives up; the hash lets an operator match this line
			// to the provider's delivery log without the log holding
			// customers' messages.
			s.log.LogAttrs(ctx, slog.LevelWarn, "webhook refused",
				slog.String("request_id", requestID(c)),
				slog.String("channel_type", typ),
				slog.String("channel", ch.ID),
				slog.String("body_sha256", channel.BodyHash(body)),
				slog.Int("body_bytes", len(body)),
				slog.Any("err", err))
		}
		return err
	}
	if resp.ContentType != "" {
		c.Set(fiber.HeaderContentType, resp.ContentType)
	}
	return c.Status(resp.Status).Send(resp.Body)
}
