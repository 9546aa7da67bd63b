package httpapi

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// conversationUpdate is PATCH /api/v1/conversations/{id} with any of
// status, assignee_id, labels and snoozed_until. A field that is absent is
// left alone; assignee_id or snoozed_until set to null clears it, which is
// why the body is read field by field rather than into a struct.
func (s *Server) conversationUpdate(c *fiber.Ctx) error {
	var fields map[string]json.RawMessage
	if err := decodeBody(c, &fields); err != nil {
		return err
	}
	patch, err := parsePatch(fields)
	if err != nil {
		return err
	}
	conv, err := s.svc.UpdateConversation(c.UserContext(), principal(c), c.Params("id"), patch)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conversation": conv})
}

func parsePatch(fields map[string]json.RawMessage) (inbox.Patch, error) {
	var p inbox.Patch
	if raw, ok := fields["status"]; ok {
		var st string
		if isNull(raw) || json.Unmarshal(raw, &st) != nil {
			return p, invalid("status must be one of open, pending, snoozed, resolved")
		}
		status := inbox.Status(st)
		p.Status = &status
	}
	if raw, ok := fields["assignee_id"]; ok {
		p.AssigneeSet = true
		if !isNull(raw) {
			var id string
			if json.Unmarshal(raw, &id) != nil || id == "" {
				return p, invalid("assignee_id must be an agent id, or null to unassign")
			}
			p.AssigneeID = &id
		}
	}
	if raw, ok := fields["labels"]; ok {
		var labels []string
		if isNull(raw) || json.Unmarshal(raw, &labels) != nil {
			return p, invalid("labels must be an array of strings")
		}
		if labels == nil {
			labels = []string{}
		}
		p.Labels = &labels
	}
	if raw, ok := fields["snoozed_until"]; ok {
		p.SnoozedSet = true
		if !isNull(raw) {
			var ts string
			if json.Unmarshal(raw, &ts) != nil {
				return p, invalid("snoozed_until must be an RFC 3339 time, or null")
			}
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return p, invalid("snoozed_until must be an RFC 3339 time, or null")
			}
			p.SnoozedUntil = &t
		}
	}
	return p, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }
