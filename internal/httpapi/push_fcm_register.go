package httpapi

import "github.com/gofiber/fiber/v2"

// pushFCMRegister is POST /api/v1/push/fcm {"token"}: the Android app's
// FCM registration token. Registering it again refreshes it; either way
// the answer is 201 with the device.
func (s *Server) pushFCMRegister(c *fiber.Ctx) error {
	var in struct {
		Token string `json:"token"`
	}
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	d, err := s.svc.RegisterFCM(c.UserContext(), principal(c), in.Token)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"device": viewPushDevice(d)})
}
