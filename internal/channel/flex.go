package channel

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Flex is a scalar a provider sends as a string or a number depending on
// the field and the API version (timestamps, error codes, file sizes); it
// keeps the value's text either way.
type Flex string

// UnmarshalJSON accepts a string, a number or null.
func (f *Flex) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = Flex(s)
	case bytes.Equal(b, []byte("null")):
		*f = ""
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a string or a number")
		}
		*f = Flex(n.String())
	}
	return nil
}
