package whatsapp

import (
	"encoding/hex"
	"strings"

	"github.com/onebox/onebox/internal/channel"
)

// SignatureHeader carries Meta's signature of a webhook body.
const SignatureHeader = "X-Hub-Signature-256"

// VerifySignature checks "sha256=<hex>" against HMAC-SHA256(app secret,
// raw body), in constant time. Any failure is the same error.
func VerifySignature(appSecret, header string, body []byte) error {
	const prefix = "sha256="
	if appSecret == "" || len(header) <= len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return channel.ErrSignature("WhatsApp")
	}
	if !channel.EqualHex(header[len(prefix):], channel.HMACSHA256(appSecret, body)) {
		return channel.ErrSignature("WhatsApp")
	}
	return nil
}

// Sign is the header value Meta would send for body; tests and tools
// that replay deliveries use it.
func Sign(appSecret string, body []byte) string {
	return "sha256=" + hex.EncodeToString(channel.HMACSHA256(appSecret, body))
}
