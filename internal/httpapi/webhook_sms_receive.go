package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// webhookSMSReceive is POST /webhooks/sms/{channel_id}: the gateway's
// inbound messages and status callbacks, signed with X-Onebox-Signature.
func (s *Server) webhookSMSReceive(c *fiber.Ctx) error {
	return s.webhook(c, inbox.ChannelSMS)
}
