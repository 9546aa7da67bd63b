package httpapi

import "github.com/gofiber/fiber/v2"

// messageRetry is POST /api/v1/messages/{id}/retry, an extension of the
// contract: put a failed reply back in the outbox. Only failed outbound
// messages qualify (409 otherwise). Answers 200 {"message"} with the
// message, now pending.
func (s *Server) messageRetry(c *fiber.Ctx) error {
	m, err := s.svc.RetryMessage(c.UserContext(), principal(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"message": m})
}
