package ws

import (
	"encoding/json"
	"fmt"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/inbox"
)

// Close codes. Malformed JSON closes with 1007 (invalid frame payload data:
// the payload does not match the message type, JSON text); a binary message
// closes with 1003 (unsupported data).
const (
	closeUnauthorized websocket.StatusCode = 4401
)

// maxIDLength bounds ids relayed from clients, so a typing frame cannot make
// every other socket carry an arbitrarily large string.
const maxIDLength = 128

// helloFrame is the client's first frame.
type helloFrame struct {
	Type  string `json:"type"`
	Token string `json:"token"`
	Since uint64 `json:"since"`
}

// clientFrame is any later client frame; only typing has fields we read.
type clientFrame struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
}

type welcomeFrame struct {
	Type  string      `json:"type"`
	Head  uint64      `json:"head"`
	Agent inbox.Agent `json:"agent"`
}

type resetFrame struct {
	Type string `json:"type"`
	Head uint64 `json:"head"`
}

func decodeHello(data []byte) (helloFrame, error) {
	var h helloFrame
	if err := json.Unmarshal(data, &h); err != nil {
		return h, fmt.Errorf("decode hello: %w", err)
	}
	return h, nil
}

func decodeClientFrame(data []byte) (clientFrame, error) {
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("decode client frame: %w", err)
	}
	return f, nil
}

func encodeJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return b, nil
}
