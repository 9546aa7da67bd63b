package inbox

import (
	"testing"
	"time"
)

// FuzzCursor: a cursor is either refused as invalid or decodes to a
// position that re-encodes to the very same cursor, so each position has
// one cursor and the server accepts only the ones it could have given
// out; every position survives the round trip.
func FuzzCursor(f *testing.F) {
	conv := Conversation{ID: "c_01HZX3", LastActivityAt: time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)}
	f.Add(*encodeCursor(listPos(conv)))
	f.Add(*encodeCursor(productPos(Product{ID: "p_1", Title: "Blue Mug"})))
	f.Add("")
	f.Add("QQ")
	f.Add("QR")
	f.Add("QUFB\n")
	f.Add("QUFB==")
	f.Add("@@@")
	f.Add("_-_-")
	f.Fuzz(func(t *testing.T, c string) {
		pos, err := decodeCursor(c)
		if err != nil {
			if ErrorCode(err) != CodeInvalid {
				t.Fatalf("cursor %q: error %v is not invalid", c, err)
			}
		} else if c == "" {
			if pos != "" {
				t.Fatalf("empty cursor gave position %q", pos)
			}
		} else {
			if pos == "" {
				t.Fatalf("cursor %q gave no position", c)
			}
			if again := *encodeCursor(pos); again != c {
				t.Fatalf("cursor %q decodes to %q, which encodes to %q", c, pos, again)
			}
		}
		// The fuzzed text as a position: any non-empty one round-trips.
		if c != "" {
			back, err := decodeCursor(*encodeCursor(c))
			if err != nil || back != c {
				t.Fatalf("position %q came back as %q (%v)", c, back, err)
			}
		}
	})
}
