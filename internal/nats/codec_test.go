package nats

import (
	"reflect"
	"testing"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

func TestCodecRoundTripsEveryKind(t *testing.T) {
	msgs := []hub.Message{
		{Kind: hub.KindEvents, Events: []hub.Frame{{Seq: 7, Data: []byte(`{"type":"event"}`)}, {Seq: 1 << 40, Data: []byte{}}}},
		{Kind: hub.KindTyping, AgentID: "agent-1", Frame: []byte(`{"type":"typing"}`)},
		{Kind: hub.KindPresence, AgentID: "agent-2", Node: "node-a", Online: true, Frame: []byte(`{"type":"presence"}`)},
		{Kind: hub.KindPresence, AgentID: "agent-2", Node: "node-a", Online: false, Frame: []byte(`{}`)},
		{Kind: hub.KindDisconnect, Match: inbox.Match{KeyID: "k", SessionHash: "s", AgentID: "a"}},
		{Kind: hub.KindDisconnect, Match: inbox.Match{AgentID: "only-agent"}},
		{Kind: hub.KindHeartbeat, Node: "node-b", Ask: true, Agents: []string{"a1", "a2"}},
		{Kind: hub.KindHeartbeat, Node: "node-c", Agents: []string{}},
		{Kind: hub.KindResync},
	}
	for _, m := range msgs {
		b, err := encode(nil, m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		got, err := decode(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", m, err)
		}
		if m.Kind == hub.KindEvents {
			// An empty frame comes back as an empty, not nil, slice.
			for i := range m.Events {
				if string(got.Events[i].Data) != string(m.Events[i].Data) || got.Events[i].Seq != m.Events[i].Seq {
					t.Fatalf("event %d: got %+v, want %+v", i, got.Events[i], m.Events[i])
				}
			}
			continue
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
		// Every strict prefix is refused, never half-read.
		for n := range len(b) {
			if _, err := decode(b[:n]); err == nil {
				t.Errorf("decode of %d of %d bytes of %+v succeeded", n, len(b), m)
			}
		}
	}
}

func TestCodecRefusesBadInput(t *testing.T) {
	good, _ := encode(nil, hub.Message{Kind: hub.KindTyping, AgentID: "a", Frame: []byte("{}")})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version":        append([]byte{9}, good[1:]...),
		"kind":           {wireVersion, 'Z'},
		"trailing":       append(append([]byte{}, good...), 0),
		"huge count":     {wireVersion, wireEvents, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"huge length":    {wireVersion, wireTyping, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'},
		"bad bool":       {wireVersion, wireHeartbeat, 1, 'n', 7, 0},
		"overlong count": {wireVersion, wireHeartbeat, 0, 0, 0x80, 0x00},
		"overlong seq":   {wireVersion, wireEvents, 1, 0x81, 0x00, 0},
		"seq not rising": mustEncode(t, hub.Message{Kind: hub.KindEvents, Events: []hub.Frame{{Seq: 2, Data: []byte("{}")}, {Seq: 2, Data: []byte("{}")}}}),
	} {
		if _, err := decode(b); err == nil {
			t.Errorf("%s: decoded %x", name, b)
		}
	}
	if _, err := encode(nil, hub.Message{Kind: 99}); err == nil {
		t.Error("encoded an unknown kind")
	}
}

func mustEncode(t *testing.T, m hub.Message) []byte {
	t.Helper()
	b, err := encode(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzDecode(f *testing.F) {
	f.Add(mustEncodeF(hub.Message{Kind: hub.KindEvents, Events: []hub.Frame{{Seq: 1, Data: []byte("{}")}}}))
	f.Add(mustEncodeF(hub.Message{Kind: hub.KindHeartbeat, Node: "n", Agents: []string{"a"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		again, err := encode(nil, m)
		if err != nil || string(again) != string(b) {
			t.Fatalf("re-encode of %x: %x, %v", b, again, err)
		}
	})
}

func mustEncodeF(m hub.Message) []byte {
	b, err := encode(nil, m)
	if err != nil {
		panic(err)
	}
	return b
}
