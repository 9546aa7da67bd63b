package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// conversationsList is GET /api/v1/conversations: the inbox, newest
// activity first, filtered by status, assignee (me, none or an agent id),
// label and free text, a page at a time.
func (s *Server) conversationsList(c *fiber.Ctx) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	convs, next, err := s.svc.ListConversations(c.UserContext(), principal(c), inbox.Filter{
		Status:   c.Query("status"),
		Assignee: c.Query("assignee"),
		Label:    c.Query("label"),
		Q:        c.Query("q"),
		Limit:    limit,
		Cursor:   c.Query("cursor"),
	})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conversations": nonNil(convs), "next_cursor": next})
}
