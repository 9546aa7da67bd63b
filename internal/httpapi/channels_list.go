package httpapi

import "github.com/gofiber/fiber/v2"

// channelsList is GET /api/v1/channels (admin). Secrets in the channels'
// config are never part of the answer.
func (s *Server) channelsList(c *fiber.Ctx) error {
	chs, err := s.svc.ListChannels(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"channels": nonNil(chs)})
}
