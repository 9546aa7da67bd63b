package httpapi

import "github.com/gofiber/fiber/v2"

// pushWebPushKey is GET /api/v1/push/webpush/key: the VAPID public key the
// web app subscribes with (PushManager.subscribe's applicationServerKey).
func (s *Server) pushWebPushKey(c *fiber.Ctx) error {
	key, err := s.svc.VAPIDPublicKey(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"public_key": key})
}
