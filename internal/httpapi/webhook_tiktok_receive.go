package httpapi

import "github.com/gofiber/fiber/v2"

// webhookTikTokReceive is POST /webhooks/tiktok/{channel_id}, signed with
// Tiktok-Signature. Not implemented yet.
func (s *Server) webhookTikTokReceive(c *fiber.Ctx) error {
	return webhookNotImplemented("TikTok")
}
