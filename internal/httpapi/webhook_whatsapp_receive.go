package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// webhookWhatsAppReceive is POST /webhooks/whatsapp/{channel_id}: Meta's
// deliveries of messages and statuses, signed with X-Hub-Signature-256.
func (s *Server) webhookWhatsAppReceive(c *fiber.Ctx) error {
	return s.webhook(c, inbox.ChannelWhatsApp)
}
