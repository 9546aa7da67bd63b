package httpapi

import "github.com/gofiber/fiber/v2"

// channelDelete is DELETE /api/v1/channels/{id} (admin). Conversations stay;
// the channel's webhooks stop being accepted.
func (s *Server) channelDelete(c *fiber.Ctx) error {
	if err := s.svc.DeleteChannel(c.UserContext(), principal(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
