package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SignedRequest is the payload of Meta's signed_request, as sent to a
// data deletion callback.
type SignedRequest struct {
	Algorithm string `json:"algorithm"`
	IssuedAt  int64  `json:"issued_at"`
	Expires   int64  `json:"expires,omitempty"`
	UserID    string `json:"user_id"`
}

// MaxSignedRequestAge is how old a signed request may be. Meta calls right
// after the person asks; an older one is a replay.
const MaxSignedRequestAge = 24 * time.Hour

// signedRequestSkew tolerates clocks a little ahead of ours.
const signedRequestSkew = 5 * time.Minute

// ErrBadSignedRequest is wrapped by every refusal of ParseSignedRequest.
var ErrBadSignedRequest = errors.New("invalid signed_request")

// ParseSignedRequest checks a signed_request ("signature.payload", both
// base64url, padding optional) against the app secret and returns its
// payload. The HMAC-SHA256 is over the payload as encoded, so it is checked
// before anything is decoded from it.
func ParseSignedRequest(raw, appSecret string, now time.Time) (SignedRequest, error) {
	bad := func(why string) (SignedRequest, error) {
		return SignedRequest{}, fmt.Errorf("%w: %s", ErrBadSignedRequest, why)
	}
	if appSecret == "" {
		return bad("the channel has no app secret")
	}
	sigPart, payloadPart, ok := strings.Cut(raw, ".")
	if !ok || sigPart == "" || payloadPart == "" || strings.Contains(payloadPart, ".") {
		return bad("not two dot-separated parts")
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(sigPart, "="))
	if err != nil {
		return bad("signature is not base64url")
	}
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write([]byte(payloadPart))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return bad("signature does not match")
	}
	body, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payloadPart, "="))
	if err != nil {
		return bad("payload is not base64url")
	}
	var sr SignedRequest
	if err := json.Unmarshal(body, &sr); err != nil {
		return bad("payload is not JSON")
	}
	if !strings.EqualFold(sr.Algorithm, "HMAC-SHA256") {
		return bad("algorithm must be HMAC-SHA256")
	}
	issued := time.Unix(sr.IssuedAt, 0)
	switch {
	case sr.IssuedAt <= 0:
		return bad("issued_at is missing")
	case issued.After(now.Add(signedRequestSkew)):
		return bad("issued_at is in the future")
	case now.Sub(issued) > MaxSignedRequestAge:
		return bad("issued_at is too old")
	case sr.Expires > 0 && time.Unix(sr.Expires, 0).Before(now):
		return bad("the request has expired")
	case sr.UserID == "":
		return bad("user_id is missing")
	}
	return sr, nil
}
