package inbox

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Access keys look like "obx_" followed by 32 base32 characters (160 random
// bits). The fixed prefix lets secret scanners and people recognise them;
// the first 12 characters are shown in lists so admins can tell keys apart.
const (
	keyTag      = "obx_"
	sessionTag  = "obs_"
	PrefixLen   = 12
	keyRandLen  = 20
	tokenRandLn = 32
)

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewAccessKey returns a fresh raw key and the hash to store.
func NewAccessKey() (raw, prefix, hash string) {
	b := make([]byte, keyRandLen)
	rand.Read(b) // never fails on supported platforms (crypto/rand docs)
	raw = keyTag + strings.ToLower(keyEncoding.EncodeToString(b))
	return raw, raw[:PrefixLen], HashSecret(raw)
}

// NewSessionToken returns a fresh bearer token and the hash to store.
func NewSessionToken() (raw, hash string) {
	b := make([]byte, tokenRandLn)
	rand.Read(b)
	raw = sessionTag + base64.RawURLEncoding.EncodeToString(b)
	return raw, HashSecret(raw)
}

// HashSecret is how keys and tokens are stored and looked up: SHA-256 is
// enough because they carry 160+ bits of randomness (no dictionary to
// guess from), and it keeps sign-in cheap.
func HashSecret(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// sameHash compares two stored hashes without leaking where they differ.
func sameHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// plausibleSecret rejects obviously malformed input before any lookup, with
// the same answer as a wrong key.
func plausibleSecret(raw, tag string) bool {
	return len(raw) > len(tag)+8 && len(raw) < 256 && strings.HasPrefix(raw, tag)
}
