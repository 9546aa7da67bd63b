package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// operatorInbound is POST /api/v1/operator/inbound: the operator injects
// customer messages into a channel as if its provider had delivered them.
// It exists for load tests, smoke tests after an upgrade and demos; it
// takes the operator token, so it is off unless ONEBOX_OPERATOR_TOKEN is set.
func (s *Server) operatorInbound(c *fiber.Ctx) error {
	if err := s.checkOperator(c); err != nil {
		return err
	}
	var req struct {
		ChannelID string `json:"channel_id"`
		Messages  []struct {
			ExternalID string `json:"external_id"`
			From       string `json:"from"`
			Name       string `json:"name"`
			Text       string `json:"text"`
		} `json:"messages"`
	}
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.ChannelID == "" {
		return apiErr(fiber.StatusBadRequest, codeInvalid, "channel_id is required")
	}
	if len(req.Messages) == 0 || len(req.Messages) > 100 {
		return apiErr(fiber.StatusBadRequest, codeInvalid, "messages must hold 1 to 100 messages")
	}
	batch := make([]inbox.Inbound, len(req.Messages))
	for i, m := range req.Messages {
		batch[i] = inbox.Inbound{ExternalID: m.ExternalID, ContactHandle: m.From, ContactName: m.Name, Text: m.Text}
	}
	got, err := s.svc.Receive(c.UserContext(), req.ChannelID, batch)
	if err != nil {
		return err
	}
	msgs := make([]inbox.Message, len(got))
	for i, r := range got {
		msgs[i] = r.Message
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"messages": msgs})
}
