package tiktok_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/channel/tiktok"
	"github.com/onebox/onebox/internal/inbox"
)

func seeds(f *testing.F, add func([]byte)) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// FuzzParse: a body parses into a well-formed event or is refused as
// invalid; nothing panics.
func FuzzParse(f *testing.F) {
	seeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := tiktok.Parse(body)
		if err != nil {
			if inbox.ErrorCode(err) != inbox.CodeInvalid {
				t.Fatalf("error %v is not invalid", err)
			}
			return
		}
		if m := ev.Message; m != nil {
			if m.ID == "" || m.FromID == "" || m.ToID == "" || m.Kind == "" || (m.Text == "" && m.MediaID == "") {
				t.Fatalf("bad message %+v", m)
			}
		}
		if r := ev.Read; r != nil && (r.UserID == "" || r.Until.IsZero()) {
			t.Fatalf("bad read %+v", r)
		}
	})
}

// FuzzVerifySignature: only the signature of this body, under this
// secret, made within five minutes, passes.
func FuzzVerifySignature(f *testing.F) {
	now := time.Unix(1749416383, 0)
	seeds(f, func(b []byte) {
		f.Add("tt-secret", tiktok.Sign("tt-secret", b, now), b, int64(0))
		f.Add("tt-secret", tiktok.Sign("tt-secret", b, now), b, int64(301))
		f.Add("tt-secret", "t=1,s=00", b, int64(0))
	})
	f.Fuzz(func(t *testing.T, secret, header string, body []byte, skew int64) {
		at := now.Add(time.Duration(skew) * time.Second)
		err := tiktok.VerifySignature(secret, header, body, at)
		if err != nil && inbox.ErrorCode(err) != inbox.CodeUnauthorized {
			t.Fatalf("error %v is not unauthorized", err)
		}
		if err == nil && secret == "" {
			t.Fatal("an empty secret verified")
		}
		if header == tiktok.Sign(secret, body, now) && secret != "" {
			fresh := skew >= -300 && skew <= 300
			if fresh != (err == nil) {
				t.Fatalf("skew %ds: err %v", skew, err)
			}
		}
	})
}
