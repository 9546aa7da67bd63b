package loadtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// frame is what a client socket learns from one server frame. Parsing is on
// the hot path of the client (10,000 sockets each reading every event), so
// the usual frame shape is read without building any objects; anything else
// goes through encoding/json.
type frame struct {
	Kind  string // "event", "welcome", "reset", "presence", "typing", ...
	Seq   uint64 // event seq
	Type  string // event type, e.g. "message.created"
	At    int64  // event's creation, unix ns (0 if unknown)
	Stamp int64  // for message.created: the load tool's send time found in its text, unix ns
	Head  uint64 // welcome, reset
}

// stampPrefix starts the text of every message the load tool sends, followed
// by the send time in unix nanoseconds, so each receiving socket can measure
// the message's journey without asking anyone.
const stampPrefix = "lt:"

var (
	fastEvent   = []byte(`{"type":"event","event":{"seq":`)
	fastType    = []byte(`,"type":"`)
	fastAt      = []byte(`,"at":"`)
	stampMarker = []byte(`"text":"` + stampPrefix)
)

const typeMessageCreated = "message.created"

// Interned event types, so the fast path does not allocate a string per frame.
var knownTypes = []string{
	"message.created", "message.updated", "conversation.created",
	"conversation.updated", "agent.updated", "contact.erased",
}

func internType(b []byte) string {
	for _, t := range knownTypes {
		if string(b) == t {
			return t
		}
	}
	return string(b)
}

// parseFrame reads one text frame from the server.
func parseFrame(b []byte) (frame, error) {
	if f, ok := parseEventFast(b); ok {
		return f, nil
	}
	var raw struct {
		Type  string `json:"type"`
		Head  uint64 `json:"head"`
		Event *struct {
			Seq  uint64          `json:"seq"`
			Type string          `json:"type"`
			At   time.Time       `json:"at"`
			Data json.RawMessage `json:"data"`
		} `json:"event"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return frame{}, err
	}
	f := frame{Kind: raw.Type, Head: raw.Head}
	if raw.Type == "event" {
		if raw.Event == nil {
			return frame{}, errors.New("event frame without an event")
		}
		f.Seq, f.Type = raw.Event.Seq, raw.Event.Type
		if !raw.Event.At.IsZero() {
			f.At = raw.Event.At.UnixNano()
		}
		if f.Type == typeMessageCreated {
			f.Stamp = findStamp(raw.Event.Data)
		}
	}
	return f, nil
}

// parseEventFast handles the frame as the server writes it:
// {"type":"event","event":{"seq":N,"type":"T","at":"RFC3339","data":...}}.
func parseEventFast(b []byte) (frame, bool) {
	if !bytes.HasPrefix(b, fastEvent) {
		return frame{}, false
	}
	rest := b[len(fastEvent):]
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i > 19 {
		return frame{}, false
	}
	seq, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	if err != nil {
		return frame{}, false
	}
	rest = rest[i:]
	if !bytes.HasPrefix(rest, fastType) {
		return frame{}, false
	}
	rest = rest[len(fastType):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return frame{}, false
	}
	typ := rest[:end]
	rest = rest[end+1:]
	if !bytes.HasPrefix(rest, fastAt) {
		return frame{}, false
	}
	rest = rest[len(fastAt):]
	end = bytes.IndexByte(rest, '"')
	if end < 0 {
		return frame{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, string(rest[:end]))
	if err != nil {
		return frame{}, false
	}
	f := frame{Kind: "event", Seq: seq, Type: internType(typ), At: at.UnixNano()}
	if f.Type == typeMessageCreated {
		f.Stamp = findStamp(rest[end+1:])
	}
	return f, true
}

// findStamp returns the send time the load tool wrote at the start of a
// message's text, or 0.
func findStamp(data []byte) int64 {
	i := bytes.Index(data, stampMarker)
	if i < 0 {
		return 0
	}
	d := data[i+len(stampMarker):]
	n := 0
	for n < len(d) && n < 19 && d[n] >= '0' && d[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(d[:n]), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// stampText is the text of a message sent at t.
func stampText(t time.Time, note string) string {
	return stampPrefix + strconv.FormatInt(t.UnixNano(), 10) + " " + note
}
