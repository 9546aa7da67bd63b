package httpapi

import "github.com/gofiber/fiber/v2"

// agentsList is GET /api/v1/agents: the whole team, for assignment and
// presence. The service hides emails and keys from non-admins.
func (s *Server) agentsList(c *fiber.Ctx) error {
	agents, err := s.svc.ListAgents(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"agents": viewAgents(agents)})
}
