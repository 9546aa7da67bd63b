package inbox

import (
	"encoding/json"
	"strconv"
	"time"
)

// AppendJSON appends e's JSON encoding to dst. Every event is encoded on the
// commit path and again for the live stream, and encoding/json would
// re-validate Data (already valid JSON from json.Marshal) each time; this
// writes the four fields directly, with the same output as json.Marshal.
func (e Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.Type)
	dst = append(dst, `,"at":"`...)
	dst = e.At.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","data":`...)
	if len(e.Data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, e.Data...)
	}
	return append(dst, '}')
}

// appendJSONString writes s as a JSON string; event types are plain
// identifiers, so the general encoder is only needed for anything else.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
