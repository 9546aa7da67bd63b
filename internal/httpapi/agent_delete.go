package httpapi

import "github.com/gofiber/fiber/v2"

// agentDelete is DELETE /api/v1/agents/{id} (admin). It deactivates rather
// than erases: the agent's messages keep their author, while their keys are
// revoked and their conversations return to the queue.
func (s *Server) agentDelete(c *fiber.Ctx) error {
	if err := s.svc.DeactivateAgent(c.UserContext(), principal(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
