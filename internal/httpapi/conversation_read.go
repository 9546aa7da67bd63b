package httpapi

import "github.com/gofiber/fiber/v2"

// conversationRead is POST /api/v1/conversations/{id}/read: clear the
// unread count. It takes no body.
func (s *Server) conversationRead(c *fiber.Ctx) error {
	if err := s.svc.MarkRead(c.UserContext(), principal(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
