package hub

import (
	"encoding/json"
	"fmt"

	"github.com/onebox/onebox/internal/inbox"
)

// The wire frames live here, in one place, so the replay path (package ws)
// and the live path produce byte-identical event frames.

var eventPrefix = []byte(`{"type":"event","event":`)

// EncodeEvent returns the frame {"type":"event","event":{...}} for ev.
func EncodeEvent(ev inbox.Event) ([]byte, error) {
	if len(ev.Data) > 0 && !json.Valid(ev.Data) {
		return nil, fmt.Errorf("encode event seq %d of tenant %s: data is not valid JSON", ev.Seq, ev.TenantID)
	}
	out := make([]byte, 0, len(eventPrefix)+len(ev.Data)+96)
	out = append(out, eventPrefix...)
	out = ev.AppendJSON(out)
	return append(out, '}'), nil
}

type typingFrame struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	AgentID        string `json:"agent_id"`
}

type presenceFrame struct {
	Type    string `json:"type"`
	AgentID string `json:"agent_id"`
	Online  bool   `json:"online"`
}

// encodeTyping cannot fail: the frame holds only strings.
func encodeTyping(conversationID, agentID string) []byte {
	b, _ := json.Marshal(typingFrame{Type: "typing", ConversationID: conversationID, AgentID: agentID})
	return b
}

func encodePresence(agentID string, online bool) []byte {
	b, _ := json.Marshal(presenceFrame{Type: "presence", AgentID: agentID, Online: online})
	return b
}
