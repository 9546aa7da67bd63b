package tiktok

import (
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/channel"
)

// SignatureHeader carries TikTok's signature of a webhook body.
const SignatureHeader = "Tiktok-Signature"

// MaxSkew is how far a signature's timestamp may be from the server's
// clock: older deliveries could be replays.
const MaxSkew = 5 * time.Minute

// VerifySignature checks "t=<unix>,s=<hex>" against
// HMAC-SHA256(client secret, t + "." + raw body), in constant time, and
// that t is within MaxSkew of now. Any failure is the same error.
func VerifySignature(clientSecret, header string, body []byte, now time.Time) error {
	bad := channel.ErrSignature("TikTok")
	if clientSecret == "" || header == "" || len(header) > 1024 {
		return bad
	}
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "s":
			sigs = append(sigs, v)
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return bad
	}
	if d := now.Sub(time.Unix(t, 0)); d > MaxSkew || d < -MaxSkew {
		return bad
	}
	mac := channel.HMACSHA256(clientSecret, []byte(ts), []byte("."), body)
	for _, s := range sigs {
		if channel.EqualHex(s, mac) {
			return nil
		}
	}
	return bad
}

// Sign is the header value TikTok would send for body at t.
func Sign(clientSecret string, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",s=" + hex.EncodeToString(channel.HMACSHA256(clientSecret, []byte(ts), []byte("."), body))
}
