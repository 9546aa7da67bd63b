// Package sms is the generic HTTP SMS gateway channel of CONTRACT.md:
// inbound messages and status callbacks arrive signed with
// X-Onebox-Signature, and replies are POSTed to the channel's send_url.
package sms

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// SignatureHeader carries the gateway's signature of a webhook body.
const SignatureHeader = "X-Onebox-Signature"

// VerifySignature checks "sha256=<hex>" against HMAC-SHA256(webhook
// secret, raw body), in constant time.
func VerifySignature(secret, header string, body []byte) error {
	const prefix = "sha256="
	if secret == "" || len(header) <= len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return channel.ErrSignature("SMS gateway")
	}
	if !channel.EqualHex(header[len(prefix):], channel.HMACSHA256(secret, body)) {
		return channel.ErrSignature("SMS gateway")
	}
	return nil
}

// Sign is the header value a gateway sends for body.
func Sign(secret string, body []byte) string {
	return "sha256=" + hex.EncodeToString(channel.HMACSHA256(secret, body))
}

// Callback is one webhook call: an inbound message or a status report.
type Callback struct {
	Inbound *inbox.Inbound
	Status  *inbox.StatusReport
}

// payload holds both shapes; "status" tells them apart.
type payload struct {
	ID        string          `json:"id"`
	From      string          `json:"from"`
	To        string          `json:"to"`
	Text      *string         `json:"text"`
	Timestamp json.RawMessage `json:"timestamp"`
	Status    *string         `json:"status"`
	Error     json.RawMessage `json:"error"`
}

// Parse reads a webhook body: {"from","to","text","id","timestamp"} for a
// message, {"id","status","error"?} for a status callback.
func Parse(body []byte) (Callback, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Callback{}, channel.Malformed("the body must be a JSON object")
	}
	var p payload
	if err := json.Unmarshal(trimmed, &p); err != nil {
		return Callback{}, channel.Malformed("the body is not a gateway callback: %v", err)
	}
	if p.Status != nil {
		return statusOf(p)
	}
	from := strings.TrimSpace(p.From)
	if from == "" {
		return Callback{}, channel.Malformed("an inbound message needs from (or a status callback needs status)")
	}
	at, err := timestamp(p.Timestamp)
	if err != nil {
		return Callback{}, err
	}
	text := ""
	if p.Text != nil {
		text = *p.Text
	}
	if strings.TrimSpace(text) == "" {
		text = "[Empty message]"
	}
	return Callback{Inbound: &inbox.Inbound{
		ExternalID: strings.TrimSpace(p.ID), ContactHandle: from, Kind: inbox.KindText, Text: text, At: at,
	}}, nil
}

func statusOf(p payload) (Callback, error) {
	id := strings.TrimSpace(p.ID)
	if id == "" {
		return Callback{}, channel.Malformed("a status callback needs the gateway's id")
	}
	r := &inbox.StatusReport{ExternalID: id}
	switch *p.Status {
	case "sent":
		r.Status = inbox.MsgSent
	case "delivered":
		r.Status = inbox.MsgDelivered
	case "read":
		r.Status = inbox.MsgRead
	case "failed":
		r.Status = inbox.MsgFailed
		r.Error = errorOf(p.Error)
	default:
		return Callback{}, channel.Malformed("status must be one of sent, delivered, read, failed")
	}
	return Callback{Status: r}, nil
}

// errorOf reads the optional error of a failed status: a string, or an
// object with code and message.
func errorOf(raw json.RawMessage) *inbox.MessageError {
	e := &inbox.MessageError{Code: "failed", Message: "the SMS gateway could not deliver the message"}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return e
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s = strings.TrimSpace(s); s != "" {
			e.Message = s
		}
		return e
	}
	var o struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(raw, &o) == nil {
		if c := strings.Trim(string(bytes.TrimSpace(o.Code)), `"`); c != "" && c != "null" {
			e.Code = c
		}
		if o.Message != "" {
			e.Message = o.Message
		}
	}
	return e
}

// timestamp reads RFC 3339 or unix seconds (a number or a numeric
// string); absent is zero (now).
func timestamp(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, channel.Malformed("timestamp is not readable")
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 || n > 1<<40 {
			return time.Time{}, channel.Malformed("timestamp is out of range")
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, channel.Malformed("timestamp must be RFC 3339 or unix seconds")
	}
	return t.UTC(), nil
}
