package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// messagesList is GET /api/v1/conversations/{id}/messages?before=&limit=:
// the newest messages older than before, oldest first within the page, so
// the app can prepend pages while scrolling up.
func (s *Server) messagesList(c *fiber.Ctx) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	before := c.Query("before")
	msgs, err := s.svc.ListMessages(c.UserContext(), principal(c), c.Params("id"), before, limit)
	if err != nil {
		// The service calls an unknown before= "invalid"; as an id that
		// names nothing the caller can see (another tenant's message
		// included) it is answered like every other such id: 404.
		if before != "" && inbox.ErrorCode(err) == inbox.CodeInvalid {
			return apiErr(fiber.StatusNotFound, codeNotFound, "before is not a message of this conversation")
		}
		return err
	}
	return c.JSON(fiber.Map{"messages": nonNil(msgs)})
}
