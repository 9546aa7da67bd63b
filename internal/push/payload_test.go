package push

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/onebox/onebox/internal/inbox"
)

func TestPayloadFitsWhateverTheText(t *testing.T) {
	conv := inbox.Conversation{ID: "c1", TenantID: "t1",
		Contact: inbox.ContactRef{Name: strings.Repeat("\u0001", inbox.MaxNameLen)},
		Channel: inbox.ChannelRef{Type: inbox.ChannelSMS, Name: strings.Repeat("\"", inbox.MaxNameLen)}}
	texts := map[string]string{
		"emoji":          strings.Repeat("😀", 4*inbox.MaxTextLen),
		"control chars":  strings.Repeat("\u0002", inbox.MaxTextLen),
		"html-escaped":   strings.Repeat("<&>", inbox.MaxTextLen),
		"plain":          strings.Repeat("a", inbox.MaxTextLen),
		"just under cap": strings.Repeat("b", previewRunes),
	}
	for name, text := range texts {
		p := buildPayload(conv, inbox.Message{Kind: inbox.KindText, Text: text}, 9, false)
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MaxPayload {
			t.Errorf("%s: payload is %d bytes, over %d", name, len(b), MaxPayload)
		}
		if !utf8.ValidString(p.Body) || !utf8.ValidString(p.Title) {
			t.Errorf("%s: trimming split a character", name)
		}
		if p.Body == "" || p.Title == "" {
			t.Errorf("%s: trimmed to nothing: %+v", name, p)
		}
		if utf8.RuneCountInString(p.Body) > previewRunes {
			t.Errorf("%s: body of %d characters, want at most %d", name, utf8.RuneCountInString(p.Body), previewRunes)
		}
	}
	short := buildPayload(conv, inbox.Message{Text: strings.Repeat("b", previewRunes)}, 9, false)
	if short.Body != strings.Repeat("b", previewRunes) {
		t.Error("a preview that fits was cut")
	}
	long := buildPayload(conv, inbox.Message{Text: strings.Repeat("c", previewRunes+1)}, 9, false)
	if !strings.HasSuffix(long.Body, "…") {
		t.Errorf("a cut preview does not say so: %q", long.Body)
	}
}

func TestPayloadWords(t *testing.T) {
	conv := inbox.Conversation{ID: "c1", TenantID: "t1", Contact: inbox.ContactRef{Handle: "+15550001"}, Channel: inbox.ChannelRef{Type: inbox.ChannelTikTok}}
	cases := []struct {
		m    inbox.Message
		body string
	}{
		{inbox.Message{Kind: inbox.KindImage}, "Photo"},
		{inbox.Message{Kind: inbox.KindAudio}, "Voice message"},
		{inbox.Message{Kind: inbox.KindFile}, "File"},
		{inbox.Message{Kind: inbox.KindVideo}, "Video"},
		{inbox.Message{Kind: inbox.KindProduct}, "Product"},
		{inbox.Message{Kind: inbox.KindImage, Text: "look\n\tat this"}, "look at this"},
	}
	for _, c := range cases {
		p := buildPayload(conv, c.m, 1, false)
		if p.Body != c.body {
			t.Errorf("%s message: body %q, want %q", c.m.Kind, p.Body, c.body)
		}
		if p.Title != "+15550001 · TikTok" {
			t.Errorf("title %q, want the handle and channel type when names are missing", p.Title)
		}
	}
}

func TestTopicIsAValidRFC8030Topic(t *testing.T) {
	a, b := Topic("t1", "c1"), Topic("t1", "c2")
	if len(a) != 32 || a == b || Topic("t1", "c1") != a {
		t.Errorf("topics %q %q: want 32 characters, stable and distinct", a, b)
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			t.Errorf("topic %q has %q, outside the URL-safe base64 alphabet", a, r)
		}
	}
}
