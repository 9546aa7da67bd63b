package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// agentCreate is POST /api/v1/agents (admin): add a person with a first
// access key, shown only in this answer.
func (s *Server) agentCreate(c *fiber.Ctx) error {
	var req struct {
		Name  string     `json:"name"`
		Email string     `json:"email"`
		Role  inbox.Role `json:"role"`
	}
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	a, key, raw, err := s.svc.CreateAgent(c.UserContext(), principal(c),
		inbox.NewAgent{Name: req.Name, Email: req.Email, Role: req.Role})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"agent": viewAgent(a), "key": viewKey(key), "access_key": raw})
}
