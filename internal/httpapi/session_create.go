package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// sessionCreate is POST /api/v1/session: an agent trades an access key for
// a session token for this device. A wrong key gets the service's one
// 401, whether or not the key exists.
func (s *Server) sessionCreate(c *fiber.Ctx) error {
	var req struct {
		AccessKey string       `json:"access_key"`
		Device    inbox.Device `json:"device"`
	}
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.AccessKey == "" {
		return invalid("access_key is required")
	}
	p, token, err := s.svc.SignIn(c.UserContext(), req.AccessKey, req.Device)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{
		"token":      token,
		"expires_at": p.Session.ExpiresAt,
		"agent":      viewAgent(p.Agent),
		"tenant":     p.Tenant,
	})
}
