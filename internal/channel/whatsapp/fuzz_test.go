package whatsapp_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/onebox/onebox/internal/channel/whatsapp"
	"github.com/onebox/onebox/internal/inbox"
)

// seeds adds every fixture to a fuzz corpus.
func seeds(f *testing.F, add func(body []byte)) {
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

// FuzzParse: any body either parses into messages that all have a sender,
// an id, a kind and something to show, or is refused as invalid; nothing
// panics.
func FuzzParse(f *testing.F) {
	seeds(f, func(b []byte) { f.Add(b) })
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"106540352242922"},"messages":[{"from":"1","id":"x","type":"image","image":{}}]}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := whatsapp.Parse(body, "106540352242922")
		if err != nil {
			if inbox.ErrorCode(err) != inbox.CodeInvalid {
				t.Fatalf("error %v is not invalid", err)
			}
			return
		}
		for _, m := range n.Messages {
			if m.ContactHandle == "" || m.ExternalID == "" || m.Kind == "" {
				t.Fatalf("message without handle, id or kind: %+v", m)
			}
			if m.Text == "" && m.MediaID == "" {
				t.Fatalf("message with nothing to show: %+v", m)
			}
		}
		for _, s := range n.Statuses {
			if s.ExternalID == "" || s.Status == "" || (s.Status == inbox.MsgFailed) != (s.Error != nil) {
				t.Fatalf("bad status report %+v", s)
			}
		}
	})
}

// FuzzVerifySignature: only the exact signature of the body under the
// secret passes.
func FuzzVerifySignature(f *testing.F) {
	seeds(f, func(b []byte) {
		f.Add("app-secret-1", whatsapp.Sign("app-secret-1", b), b)
		f.Add("app-secret-1", "sha256=00", b)
	})
	f.Fuzz(func(t *testing.T, secret, header string, body []byte) {
		err := whatsapp.VerifySignature(secret, header, body)
		valid := secret != "" && header == whatsapp.Sign(secret, body)
		if valid && err != nil {
			t.Fatalf("the right signature was refused: %v", err)
		}
		if err != nil && inbox.ErrorCode(err) != inbox.CodeUnauthorized {
			t.Fatalf("error %v is not unauthorized", err)
		}
		if err == nil && !valid && secret != "" {
			// Only case or prefix spelling may differ from Sign's output.
			if len(header) != len(whatsapp.Sign(secret, body)) {
				t.Fatalf("a wrong signature %q passed", header)
			}
		}
		if err == nil && secret == "" {
			t.Fatal("an empty secret verified a signature")
		}
	})
}
