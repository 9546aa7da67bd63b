package httpapi

import "github.com/gofiber/fiber/v2"

// webhookSMSReceive is POST /webhooks/sms/{channel_id}, signed with
// X-Onebox-Signature. Not implemented yet.
func (s *Server) webhookSMSReceive(c *fiber.Ctx) error {
	return webhookNotImplemented("SMS")
}
