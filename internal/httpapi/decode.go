package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// decodeBody reads the request body, which must be one JSON object, into v.
// Unknown fields are ignored (CONTRACT: clients may be newer than the
// server). The Content-Type is not checked: the API is authenticated by
// bearer tokens, not cookies, so a form posted cross-site has nothing to
// ride on, and being lenient helps curl users.
func decodeBody(c *fiber.Ctx, v any) error {
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && !strings.EqualFold(enc, "identity") {
		// Decompressing would let a small body expand past MaxBody.
		return invalid("compressed request bodies are not accepted")
	}
	body := c.Request().Body()
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return invalid("the request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return jsonError(err)
	}
	return nil
}

// jsonError explains a decoding failure, naming the field when the JSON is
// well formed but a value has the wrong type.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return invalid(fmt.Sprintf("%s must be %s, not %s", te.Field, describeType(te.Type), te.Value))
	case errors.As(err, &se):
		return invalid(fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error()))
	}
	return invalid("malformed JSON")
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return "a " + t.Kind().String()
}

// queryLimit reads ?limit=. Absent means the default; over the maximum is
// clamped (the contract's "max 200"); anything that is not a positive whole
// number is refused rather than guessed at.
func queryLimit(c *fiber.Ctx) (int, error) {
	raw := c.Query("limit")
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return 0, invalid("limit must be a whole number from 1 to " + strconv.Itoa(inbox.MaxPageLimit))
	}
	return inbox.ClampLimit(n), nil
}

// querySeq reads a non-negative event sequence number such as ?since=.
func querySeq(c *fiber.Ctx, name string) (uint64, error) {
	raw := c.Query(name)
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, invalid(name + " must be a non-negative whole number")
	}
	return n, nil
}
