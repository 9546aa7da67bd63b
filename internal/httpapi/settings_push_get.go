package httpapi

import "github.com/gofiber/fiber/v2"

// settingsPushGet is GET /api/v1/settings/push (admin): {"private"}.
func (s *Server) settingsPushGet(c *fiber.Ctx) error {
	ps, err := s.svc.PushSettings(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(ps)
}
