package httpapi

import "github.com/gofiber/fiber/v2"

// channelCreate is POST /api/v1/channels (admin). Config values must be
// strings: provider credentials and URLs are, and accepting numbers would
// only move the type confusion into the channel adapters.
func (s *Server) channelCreate(c *fiber.Ctx) error {
	var req struct {
		Type   string            `json:"type"`
		Name   string            `json:"name"`
		Config map[string]string `json:"config"`
	}
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	ch, err := s.svc.CreateChannel(c.UserContext(), principal(c), req.Type, req.Name, req.Config)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"channel": ch})
}
