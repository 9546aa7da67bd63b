package httpapi

import "github.com/gofiber/fiber/v2"

// pushFCMUnregister is DELETE /api/v1/push/fcm {"token"}. A token that is
// not registered (any more) is not an error.
func (s *Server) pushFCMUnregister(c *fiber.Ctx) error {
	var in struct {
		Token string `json:"token"`
	}
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if err := s.svc.UnregisterFCM(c.UserContext(), principal(c), in.Token); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
