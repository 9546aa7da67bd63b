package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// webhookWhatsAppVerify is GET /webhooks/whatsapp/{channel_id}, Meta's
// subscription check: the hub.challenge echoed when hub.verify_token is
// the channel's, 403 otherwise.
func (s *Server) webhookWhatsAppVerify(c *fiber.Ctx) error {
	return s.webhook(c, inbox.ChannelWhatsApp)
}
