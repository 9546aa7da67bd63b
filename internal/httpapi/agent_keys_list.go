package httpapi

import "github.com/gofiber/fiber/v2"

// agentKeysList is GET /api/v1/agents/{id}/keys (admin): prefixes and
// dates only; raw keys are never stored.
func (s *Server) agentKeysList(c *fiber.Ctx) error {
	keys, err := s.svc.ListKeys(c.UserContext(), principal(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"keys": viewKeys(keys)})
}
