package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// webhookTikTokReceive is POST /webhooks/tiktok/{channel_id}, signed with
// Tiktok-Signature (a timestamp more than 5 minutes off is refused).
func (s *Server) webhookTikTokReceive(c *fiber.Ctx) error {
	return s.webhook(c, inbox.ChannelTikTok)
}
