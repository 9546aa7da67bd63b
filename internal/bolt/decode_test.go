package bolt

import (
	"encoding/json"
	"errors"
	"slices"
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

// TestRecordsAreStoredAsGiven: pre-encoded records, speculated or written
// by the committer, are stored byte for byte; a RawMessage is copied, so
// its caller may reuse the memory.
func TestRecordsAreStoredAsGiven(t *testing.T) {
	s := openTest(t, Options{})
	ctx := t.Context()
	c := inbox.Collection{Tenant: "acme", Name: "conversations"}
	enc := inbox.Encoded(`{"id":"c1","labels":["vip"]}`)
	raw := json.RawMessage(`{"id":"c2"}`)
	for name, write := range map[string]func(func(inbox.Tx) error) error{
		"speculated": func(fn func(inbox.Tx) error) error { return s.Speculate(ctx, fn) },
		"committer":  func(fn func(inbox.Tx) error) error { return s.Update(ctx, fn) },
	} {
		mine := slices.Clone(raw)
		if err := write(func(tx inbox.Tx) error {
			if err := tx.Put(c, name+"/enc", enc); err != nil {
				return err
			}
			return tx.Put(c, name+"/raw", mine)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		copy(mine, `{"id":"XX"}`) // the caller reuses its buffer
		view(t, s, func(tx inbox.Tx) error {
			var got json.RawMessage
			if err := tx.Get(c, name+"/enc", &got); err != nil || string(got) != string(enc) {
				t.Errorf("%s: Encoded read back as %s (%v)", name, got, err)
			}
			if err := tx.Get(c, name+"/raw", &got); err != nil || string(got) != string(raw) {
				t.Errorf("%s: RawMessage read back as %s (%v), want it as it was put", name, got, err)
			}
			return nil
		})
	}
	if b, err := json.Marshal(map[string]any{"v": inbox.Encoded(nil), "w": enc}); err != nil || string(b) != `{"v":null,"w":{"id":"c1","labels":["vip"]}}` {
		t.Fatalf("Encoded through encoding/json: %s (%v)", b, err)
	}
}
