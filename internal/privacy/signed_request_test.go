package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func sign(secret, payload string) (sig, enc string) {
	enc = base64.RawURLEncoding.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(enc))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)), enc
}

func TestParseSignedRequest(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	good := `{"algorithm":"HMAC-SHA256","issued_at":1800000000,"expires":1800003600,"user_id":"15551234"}`
	sig, enc := sign("s3cret", good)

	sr, err := ParseSignedRequest(sig+"."+enc, "s3cret", now)
	if err != nil || sr.UserID != "15551234" || sr.IssuedAt != 1_800_000_000 {
		t.Fatalf("good request: %+v, %v", sr, err)
	}
	// Padded base64 parts are accepted too.
	pad := func(s string) string { return s + strings.Repeat("=", (4-len(s)%4)%4) }
	if _, err := ParseSignedRequest(pad(sig)+"."+enc, "s3cret", now); err != nil {
		t.Errorf("padded signature: %v", err)
	}

	bad := map[string]string{
		"wrong secret":   func() string { s, e := sign("other", good); return s + "." + e }(),
		"no dot":         sig + enc,
		"three parts":    sig + "." + enc + ".x",
		"empty":          "",
		"tampered":       sig + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(good, "15551234", "15559999", 1))),
		"sig not base64": "!!!." + enc,
		"wrong algorithm": func() string {
			s, e := sign("s3cret", strings.Replace(good, "HMAC-SHA256", "none", 1))
			return s + "." + e
		}(),
		"no algorithm": func() string { s, e := sign("s3cret", `{"issued_at":1800000000,"user_id":"1"}`); return s + "." + e }(),
		"expired": func() string {
			s, e := sign("s3cret", `{"algorithm":"HMAC-SHA256","issued_at":1799999000,"expires":1799999999,"user_id":"1"}`)
			return s + "." + e
		}(),
		"ancient": func() string {
			s, e := sign("s3cret", `{"algorithm":"HMAC-SHA256","issued_at":1700000000,"user_id":"1"}`)
			return s + "." + e
		}(),
		"future": func() string {
			s, e := sign("s3cret", `{"algorithm":"HMAC-SHA256","issued_at":1800009999,"user_id":"1"}`)
			return s + "." + e
		}(),
		"no issued": func() string { s, e := sign("s3cret", `{"algorithm":"HMAC-SHA256","user_id":"1"}`); return s + "." + e }(),
		"no user": func() string {
			s, e := sign("s3cret", `{"algorithm":"HMAC-SHA256","issued_at":1800000000}`)
			return s + "." + e
		}(),
		"not json": func() string { s, e := sign("s3cret", `not json`); return s + "." + e }(),
	}
	for name, in := range bad {
		if _, err := ParseSignedRequest(in, "s3cret", now); !errors.Is(err, ErrBadSignedRequest) {
			t.Errorf("%s: err = %v, want ErrBadSignedRequest", name, err)
		}
	}
	if _, err := ParseSignedRequest(sig+"."+enc, "", now); !errors.Is(err, ErrBadSignedRequest) {
		t.Errorf("channel without secret: %v", err)
	}
}

// FuzzParseSignedRequest: no input panics, and nothing passes without a
// signature made with the secret.
func FuzzParseSignedRequest(f *testing.F) {
	sig, enc := sign("s3cret", `{"algorithm":"HMAC-SHA256","issued_at":1800000000,"user_id":"1"}`)
	f.Add(sig + "." + enc)
	f.Add("." + enc)
	f.Add("a.b")
	f.Add("====.====")
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, in string) {
		sr, err := ParseSignedRequest(in, "s3cret", now)
		if err != nil {
			if !errors.Is(err, ErrBadSignedRequest) {
				t.Fatalf("error %v does not wrap ErrBadSignedRequest", err)
			}
			return
		}
		s, p, _ := strings.Cut(in, ".")
		raw, derr := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		m := hmac.New(sha256.New, []byte("s3cret"))
		m.Write([]byte(p))
		if derr != nil || !hmac.Equal(raw, m.Sum(nil)) || sr.UserID == "" {
			t.Fatalf("accepted %q without a valid signature", in)
		}
	})
}
