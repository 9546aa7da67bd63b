package httpapi

import "github.com/gofiber/fiber/v2"

// settingsRetentionGet is GET /api/v1/settings/retention (admin):
// {"messages_days"}, 0 meaning messages are kept forever.
func (s *Server) settingsRetentionGet(c *fiber.Ctx) error {
	rs, err := s.svc.Retention(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(rs)
}
