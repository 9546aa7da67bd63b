package loadtest

import (
	"testing"
	"time"
)

func TestParseFrameFastPath(t *testing.T) {
	sent := time.Date(2025, 12, 3, 18, 0, 0, 123456789, time.UTC)
	b := []byte(`{"type":"event","event":{"seq":42,"type":"message.created","at":"2025-12-03T18:00:00.2Z",` +
		`"data":{"id":"m1","text":"` + stampText(sent, "hello") + `","created_at":"2025-12-03T18:00:00.2Z"}}}`)
	f, ok := parseEventFast(b)
	if !ok {
		t.Fatal("fast path refused the server's frame")
	}
	want := frame{Kind: "event", Seq: 42, Type: "message.created",
		At: time.Date(2025, 12, 3, 18, 0, 0, 200000000, time.UTC).UnixNano(), Stamp: sent.UnixNano()}
	if f != want {
		t.Errorf("parseEventFast = %+v, want %+v", f, want)
	}
	if g, err := parseFrame(b); err != nil || g != want {
		t.Errorf("parseFrame = %+v, %v; want %+v", g, err, want)
	}
}

func TestParseFrameSlowPath(t *testing.T) {
	// Fields in another order still parse, through encoding/json.
	b := []byte(`{"event":{"data":{"text":"lt:1000 x"},"type":"message.created","at":"2025-12-03T18:00:00Z","seq":7},"type":"event"}`)
	f, err := parseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != "event" || f.Seq != 7 || f.Stamp != 1000 || f.At != time.Date(2025, 12, 3, 18, 0, 0, 0, time.UTC).UnixNano() {
		t.Errorf("parseFrame = %+v", f)
	}
	w, err := parseFrame([]byte(`{"type":"welcome","head":12,"agent":{"id":"a"}}`))
	if err != nil || w.Kind != "welcome" || w.Head != 12 {
		t.Errorf("welcome = %+v, %v", w, err)
	}
	// Only message.created carries a stamp: conversation.updated repeats
	// the text in last_message and must not count twice.
	c, err := parseFrame([]byte(`{"type":"event","event":{"seq":8,"type":"conversation.updated","at":"2025-12-03T18:00:00Z","data":{"last_message":{"text":"lt:99 x"}}}}`))
	if err != nil || c.Stamp != 0 || c.Type != "conversation.updated" {
		t.Errorf("conversation.updated = %+v, %v; want no stamp", c, err)
	}
	if _, err := parseFrame([]byte(`not json`)); err == nil {
		t.Error("parseFrame accepted garbage")
	}
}
