package httpapi

import "github.com/gofiber/fiber/v2"

// agentKeyCreate is POST /api/v1/agents/{id}/keys (admin): another key for
// a new device or to replace a revoked one. It takes no body.
func (s *Server) agentKeyCreate(c *fiber.Ctx) error {
	key, raw, err := s.svc.IssueKey(c.UserContext(), principal(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"key": viewKey(key), "access_key": raw})
}
