package httpapi

import "github.com/gofiber/fiber/v2"

// webhookWhatsAppReceive is POST /webhooks/whatsapp/{channel_id}, signed
// with X-Hub-Signature-256. Not implemented yet.
func (s *Server) webhookWhatsAppReceive(c *fiber.Ctx) error {
	return webhookNotImplemented("WhatsApp")
}
