package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// settingsRetentionUpdate is PUT /api/v1/settings/retention
// {"messages_days"} (admin). Messages older than that many days, and their
// media, are purged by the server on its own; 0 keeps them forever. It
// answers the new setting.
func (s *Server) settingsRetentionUpdate(c *fiber.Ctx) error {
	var in struct {
		MessagesDays *int `json:"messages_days"`
	}
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if in.MessagesDays == nil {
		return invalid("messages_days is required (0 keeps messages forever)")
	}
	rs, err := s.svc.SetRetention(c.UserContext(), principal(c), inbox.RetentionSettings{MessagesDays: *in.MessagesDays})
	if err != nil {
		return err
	}
	return c.JSON(rs)
}
