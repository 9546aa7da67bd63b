package httpapi

import "github.com/gofiber/fiber/v2"

// sessionDelete is DELETE /api/v1/session: sign this device out. Its token
// stops working and its sockets close.
func (s *Server) sessionDelete(c *fiber.Ctx) error {
	if err := s.svc.SignOut(c.UserContext(), principal(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
