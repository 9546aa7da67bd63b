package ws

import (
	"testing"
	"unicode/utf8"
)

// FuzzClientFrames feeds arbitrary client frames to the decoders the reader
// goroutine uses: no input panics, and what decodes reads back the fields
// the protocol relies on.
func FuzzClientFrames(f *testing.F) {
	for _, seed := range []string{
		`{"type":"hello","token":"obs_x","since":42}`, `{"type":"hello","since":-1}`, `{"type":"hello","since":1e30}`,
		`{"type":"typing","conversation_id":"c1"}`, `{"type":"typing","conversation_id":5}`, `{"type":"ping"}`,
		`null`, `[]`, `"hello"`, `{"type":"hello","token":"\u0000"}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if h, err := decodeHello(data); err == nil {
			if !utf8.ValidString(h.Token) && utf8.Valid(data) {
				t.Fatalf("token %q decoded from valid UTF-8 %q is not valid UTF-8", h.Token, data)
			}
		}
		if fr, err := decodeClientFrame(data); err == nil && len(fr.ConversationID) > 1<<20 {
			t.Fatalf("conversation id of %d bytes from a %d-byte frame", len(fr.ConversationID), len(data))
		}
	})
}
