package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// messageCreate is POST /api/v1/conversations/{id}/messages: a reply to the
// customer, or with private=true an internal note. client_id makes retries
// safe: a repeat answers 200 with the message first created, and nothing is
// sent twice.
func (s *Server) messageCreate(c *fiber.Ctx) error {
	var req struct {
		ClientID  string `json:"client_id"`
		Text      string `json:"text"`
		MediaID   string `json:"media_id"`
		ProductID string `json:"product_id"`
		Private   bool   `json:"private"`
	}
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	m, created, err := s.svc.SendMessage(c.UserContext(), principal(c), c.Params("id"), inbox.Draft{
		ClientID:  req.ClientID,
		Text:      req.Text,
		MediaID:   req.MediaID,
		ProductID: req.ProductID,
		Private:   req.Private,
	})
	if err != nil {
		return err
	}
	status := fiber.StatusCreated
	if !created {
		status = fiber.StatusOK
	}
	return c.Status(status).JSON(fiber.Map{"message": m})
}
