package httpapi

import "github.com/gofiber/fiber/v2"

// agentKeyDelete is DELETE /api/v1/agents/{id}/keys/{key_id} (admin). The
// key's sessions end in the same transaction, so the next call made with
// one of them is refused.
func (s *Server) agentKeyDelete(c *fiber.Ctx) error {
	err := s.svc.RevokeKey(c.UserContext(), principal(c), c.Params("id"), c.Params("key_id"))
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
