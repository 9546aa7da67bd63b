package bolt

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/onebox/onebox/internal/inbox"
)

// The shortcut for stored strings must give what encoding/json gives, and
// step aside for anything it cannot read as it is.
func TestPlainJSONString(t *testing.T) {
	for raw, plain := range map[string]bool{
		`"9b2f4c1e-7a7e-4f0e-8d1a-3f5c2b6a9e10"`: true,
		`""`:                                     true,
		`"ünïcödé ✓"`:                            true,
		`"a\"b"`:                                 false,
		`"a\\b"`:                                 false,
		`"\u003cb\u003e"`:                        false,
		"\"tab\there\"":                          false,
		"\"\xff\"":                               false,
		`"open`:                                  false,
		`42`:                                     false,
		`null`:                                   false,
		`"a" "b"`:                                false,
	} {
		got, ok := plainJSONString([]byte(raw))
		if ok != plain {
			t.Errorf("%q: plain = %v, want %v", raw, ok, plain)
			continue
		}
		if ok {
			var want string
			if err := json.Unmarshal([]byte(raw), &want); err != nil || got != want {
				t.Errorf("%q: got %q, encoding/json gives %q (%v)", raw, got, want, err)
			}
		}
		var viaDecode string
		err := decodeInto(inbox.Collection{Name: "c"}, "k", []byte(raw), &viaDecode)
		var want string
		wantErr := json.Unmarshal([]byte(raw), &want)
		if (err == nil) != (wantErr == nil) || viaDecode != want {
			t.Errorf("%q: decodeInto = %q, %v; encoding/json = %q, %v", raw, viaDecode, err, want, wantErr)
		}
	}
}

func FuzzPlainJSONString(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `""`, "\"\xc3\"", `"\u00e9"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := plainJSONString(raw)
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("%q taken as plain, but encoding/json refuses it: %v", raw, err)
		}
		if got != want {
			t.Fatalf("%q: got %q, encoding/json gives %q", raw, got, want)
		}
	})
}

func TestNotFoundNamesWhatWasMissing(t *testing.T) {
	err := error(&notFound{coll: "contacts", key: "c-1"})
	if !errors.Is(err, inbox.ErrNotFound) {
		t.Fatal("not recognisable as ErrNotFound")
	}
	if got, want := err.Error(), `contacts "c-1": `+inbox.ErrNotFound.Error(); got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}
