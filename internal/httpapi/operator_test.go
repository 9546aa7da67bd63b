package httpapi

import "testing"

func TestOperatorInbound(t *testing.T) {
	const op = "operator-secret-0123456789"
	h := newHarness(t, withConfig(func(c *Config) { c.OperatorToken = op }))
	tm := h.newTeam("Initech")
	other := h.newTeam("Umbrella")
	before := h.head(other.adminToken)
	msg := map[string]any{"external_id": "sim-1", "from": "+15550100", "name": "Rosa Díaz", "text": "Is the blue jacket back in stock?"}
	body := map[string]any{"channel_id": tm.channelID, "messages": []any{msg}}

	var got struct {
		Messages []struct {
			ID             string `json:"id"`
			ConversationID string `json:"conversation_id"`
			Direction      string `json:"direction"`
			Text           string `json:"text"`
		} `json:"messages"`
	}
	h.want(h.req("POST", "/api/v1/operator/inbound", op, body), 201).json(t, &got)
	if len(got.Messages) != 1 || got.Messages[0].Direction != "in" || got.Messages[0].Text != msg["text"] {
		t.Fatalf("answer %+v", got)
	}
	var again struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	h.want(h.req("POST", "/api/v1/operator/inbound", op, body), 201).json(t, &again)
	if again.Messages[0].ID != got.Messages[0].ID {
		t.Fatalf("redelivered external id stored twice: %s vs %s", again.Messages[0].ID, got.Messages[0].ID)
	}
	var conv struct {
		Conversation struct {
			Contact struct {
				Name string `json:"name"`
			} `json:"contact"`
			UnreadCount int `json:"unread_count"`
		} `json:"conversation"`
	}
	h.want(h.req("GET", "/api/v1/conversations/"+got.Messages[0].ConversationID, tm.agentToken, nil), 200).json(t, &conv)
	if conv.Conversation.Contact.Name != "Rosa Díaz" || conv.Conversation.UnreadCount != 1 {
		t.Fatalf("conversation %+v", conv)
	}

	checkErr(t, h.req("POST", "/api/v1/operator/inbound", "", body), 401, "unauthorized")
	checkErr(t, h.req("POST", "/api/v1/operator/inbound", tm.adminToken, body), 401, "unauthorized")
	checkErr(t, h.req("POST", "/api/v1/operator/inbound", op, map[string]any{"channel_id": "nope", "messages": []any{msg}}), 404, "not_found")
	checkErr(t, h.req("POST", "/api/v1/operator/inbound", op, map[string]any{"channel_id": tm.channelID}), 400, "invalid")
	checkErr(t, h.req("POST", "/api/v1/operator/inbound", op, map[string]any{"channel_id": tm.channelID,
		"messages": []any{map[string]any{"text": "no sender"}}}), 400, "invalid")
	h.unchanged(other.adminToken, before)

	off := newHarness(t)
	checkErr(t, off.req("POST", "/api/v1/operator/inbound", op, body), 404, "not_found")
}
