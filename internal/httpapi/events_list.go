package httpapi

import "github.com/gofiber/fiber/v2"

// eventsList is GET /api/v1/events?since=&limit=: catch-up for apps that
// were offline. When the log no longer holds what follows since (or since
// is ahead of it), the answer is a reset and the app refetches its lists.
func (s *Server) eventsList(c *fiber.Ctx) error {
	since, err := querySeq(c, "since")
	if err != nil {
		return err
	}
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	events, head, reset, err := s.svc.Events(c.UserContext(), principal(c), since, limit)
	if err != nil {
		return err
	}
	if reset {
		return c.JSON(fiber.Map{"reset": true, "head": head})
	}
	return c.JSON(fiber.Map{"events": nonNil(events), "head": head})
}
