package inbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// scanJSON decodes every record of c under prefix into T, stopping when fn
// returns false.
func scanJSON[T any](tx Tx, c Collection, prefix string, fn func(T) bool) error {
	return tx.Scan(c, prefix, "", false, func(key string, raw []byte) (bool, error) {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return false, fmt.Errorf("decode %s/%s: %w", c.Name, key, err)
		}
		return fn(v), nil
	})
}

// Cursors are opaque to clients; they hold the position of the last item of
// a page. Base64 keeps clients from building them by hand.
func encodeCursor(pos string) *string {
	c := base64.RawURLEncoding.EncodeToString([]byte(pos))
	return &c
}

// decodeCursor accepts only the exact text encodeCursor makes: the
// decoder alone would also take spare bits and line breaks, giving one
// position many spellings the server never gave out.
func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 || base64.RawURLEncoding.EncodeToString(b) != c {
		return "", invalid("cursor is not one this server gave out")
	}
	return string(b), nil
}
