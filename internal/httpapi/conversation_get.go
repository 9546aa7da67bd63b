package httpapi

import "github.com/gofiber/fiber/v2"

// conversationGet is GET /api/v1/conversations/{id}.
func (s *Server) conversationGet(c *fiber.Ctx) error {
	conv, err := s.svc.GetConversation(c.UserContext(), principal(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conversation": conv})
}
