package httpapi

import "github.com/gofiber/fiber/v2"

// auditList is GET /api/v1/audit?limit=&cursor= (admin): the tenant's audit
// log, newest first. next_cursor is null on the last page.
func (s *Server) auditList(c *fiber.Ctx) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	entries, next, err := s.svc.AuditLog(c.UserContext(), principal(c), limit, c.Query("cursor"))
	if err != nil {
		return err
	}
	var cursor any
	if next != "" {
		cursor = next
	}
	return c.JSON(fiber.Map{"entries": entries, "next_cursor": cursor})
}
