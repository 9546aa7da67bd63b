package httpapi

import "github.com/gofiber/fiber/v2"

// webhookWhatsAppVerify is GET /webhooks/whatsapp/{channel_id}, Meta's
// subscription check (hub.challenge echo). Not implemented yet.
func (s *Server) webhookWhatsAppVerify(c *fiber.Ctx) error {
	return webhookNotImplemented("WhatsApp")
}
