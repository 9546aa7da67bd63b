package httpapi

import "github.com/gofiber/fiber/v2"

// webhookMetaDataDeletion is POST /webhooks/meta/{channel_id}/data-deletion,
// Meta's data deletion callback (signed_request). Not implemented yet.
func (s *Server) webhookMetaDataDeletion(c *fiber.Ctx) error {
	return webhookNotImplemented("Meta data deletion")
}
