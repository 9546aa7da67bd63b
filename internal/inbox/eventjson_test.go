package inbox

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestEventAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 3, 18, 30, 1, 123456789, time.UTC)
	// Data always comes from json.Marshal, so it is already compact and
	// HTML-escaped, as encoding/json would leave it.
	data, _ := json.Marshal(map[string]string{"id": "m1", "text": "héllo \"quoted\" <b>"})
	for _, e := range []Event{
		{Seq: 1, Type: EventMessageCreated, At: at, Data: data},
		{Seq: 18446744073709551615, Type: "weird type\n\"", At: at.Truncate(time.Second), Data: nil},
		{Seq: 7, Type: EventContactErased, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Data: json.RawMessage(`[1,2]`)},
	} {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("AppendJSON = %s\nwant        %s", got, want)
		}
	}
}
