package httpapi

import "github.com/gofiber/fiber/v2"

// pushWebPushUnsubscribe is DELETE /api/v1/push/webpush {"endpoint"}: the
// browser stops getting pushes for the caller. An endpoint that is not
// registered (any more) is not an error.
func (s *Server) pushWebPushUnsubscribe(c *fiber.Ctx) error {
	var in struct {
		Endpoint string `json:"endpoint"`
	}
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if err := s.svc.UnsubscribeWebPush(c.UserContext(), principal(c), in.Endpoint); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
