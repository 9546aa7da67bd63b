// Package pushtest has loopback stand-ins for the push services OneBox
// talks to, checking what the real ones check: the VAPID JWT and the
// aes128gcm encryption of Web Push (decrypted with the subscription's own
// keys), and the request shape of FCM's HTTP v1 API.
package pushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WebPushService is a push service on 127.0.0.1. Each subscription made by
// NewSubscription gets its own endpoint; every push is verified, decrypted
// and reported on Pushes. It answers 201 unless told otherwise with Answer.
type WebPushService struct {
	URL string
	// Pushes receives every request, verified or not. It is buffered;
	// tests drain it.
	Pushes chan WebPush
	// VerifyCrypto, on by default, checks the JWT signature and decrypts
	// the body; the benchmark turns it off so it measures the sender.
	VerifyCrypto atomic.Bool

	srv       *httptest.Server
	vapidKey  []byte // the server's VAPID public key, once known
	mu        sync.Mutex
	subs      map[string]*Subscription
	answers   map[string][]Answer
	count     atomic.Int64
	nextIndex atomic.Int64
}

// Subscription is a browser's side of a subscription: the endpoint and the
// keys it hands to the app server, and the private half it keeps.
type Subscription struct {
	Endpoint string
	P256dh   string // base64url, uncompressed point
	Auth     string // base64url, 16 bytes
	priv     *ecdh.PrivateKey
	auth     []byte
}

// Answer is a scripted response.
type Answer struct {
	Status     int
	RetryAfter string
	Body       string
}

// WebPush is one request the service received.
type WebPush struct {
	Endpoint string
	TTL      int
	Urgency  string
	Topic    string
	Claims   Claims
	// Payload is the decrypted plaintext, padding removed.
	Payload []byte
	// Status is what the service answered.
	Status int
	// Err says what a real push service would have refused, or nil.
	Err error
}

// Claims are the VAPID JWT's claims.
type Claims struct {
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
	Sub string `json:"sub"`
}

// NewWebPushService starts a service; Close stops it.
func NewWebPushService() *WebPushService {
	s := &WebPushService{
		Pushes:  make(chan WebPush, 1024),
		subs:    map[string]*Subscription{},
		answers: map[string][]Answer{},
	}
	s.VerifyCrypto.Store(true)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the service.
func (s *WebPushService) Close() { s.srv.Close() }

// Host is the service's host:port, for ONEBOX_WEBPUSH_ALLOWED_HOSTS.
func (s *WebPushService) Host() string { return strings.TrimPrefix(s.URL, "http://") }

// Count is how many requests were received.
func (s *WebPushService) Count() int64 { return s.count.Load() }

// ExpectVAPIDKey sets the public key (base64url) whose signature every push
// must carry.
func (s *WebPushService) ExpectVAPIDKey(pub string) error {
	b, err := base64.RawURLEncoding.DecodeString(pub)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.vapidKey = b
	s.mu.Unlock()
	return nil
}

// NewSubscription makes a browser-side key pair and an endpoint for it.
func (s *WebPushService) NewSubscription() (*Subscription, error) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	auth := make([]byte, 16)
	if _, err := rand.Read(auth); err != nil {
		return nil, err
	}
	n := s.nextIndex.Add(1)
	sub := &Subscription{
		Endpoint: fmt.Sprintf("%s/push/%d-%x", s.URL, n, auth[:4]),
		P256dh:   base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		Auth:     base64.RawURLEncoding.EncodeToString(auth),
		priv:     priv,
		auth:     auth,
	}
	s.mu.Lock()
	s.subs[sub.Endpoint] = sub
	s.mu.Unlock()
	return sub, nil
}

// Answer scripts the next responses for an endpoint, in order; once they
// are used up the service answers 201 again.
func (s *WebPushService) Answer(endpoint string, answers ...Answer) {
	s.mu.Lock()
	s.answers[endpoint] = append(s.answers[endpoint], answers...)
	s.mu.Unlock()
}

func (s *WebPushService) serve(w http.ResponseWriter, r *http.Request) {
	s.count.Add(1)
	endpoint := s.URL + r.URL.Path
	body, readErr := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	sub := s.subs[endpoint]
	vapid := s.vapidKey
	var ans *Answer
	if q := s.answers[endpoint]; len(q) > 0 {
		ans = &q[0]
		s.answers[endpoint] = q[1:]
	}
	s.mu.Unlock()

	p := WebPush{Endpoint: endpoint, Urgency: r.Header.Get("Urgency"), Topic: r.Header.Get("Topic")}
	status := http.StatusCreated
	fail := func(code int, err error) {
		if p.Err == nil {
			p.Err, status = err, code
		}
	}
	switch {
	case readErr != nil:
		fail(http.StatusBadRequest, readErr)
	case r.Method != http.MethodPost:
		fail(http.StatusMethodNotAllowed, fmt.Errorf("method %s, want POST", r.Method))
	case sub == nil:
		fail(http.StatusNotFound, fmt.Errorf("no subscription at %s", endpoint))
	case len(body) > 4096:
		fail(http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes exceeds 4096", len(body)))
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 {
		fail(http.StatusBadRequest, fmt.Errorf("TTL header %q is not a non-negative integer", r.Header.Get("TTL")))
	}
	p.TTL = ttl
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		fail(http.StatusUnsupportedMediaType, fmt.Errorf("Content-Encoding %q, want aes128gcm", ce))
	}
	if p.Topic != "" && !validTopic(p.Topic) {
		fail(http.StatusBadRequest, fmt.Errorf("Topic %q is not up to 32 base64url characters", p.Topic))
	}
	switch p.Urgency {
	case "", "very-low", "low", "normal", "high":
	default:
		fail(http.StatusBadRequest, fmt.Errorf("Urgency %q is not an RFC 8030 value", p.Urgency))
	}
	claims, err := checkVAPID(r.Header.Get("Authorization"), vapid, "http://"+r.Host, s.VerifyCrypto.Load())
	p.Claims = claims
	if err != nil {
		fail(http.StatusUnauthorized, err)
	}
	if sub != nil && p.Err == nil && s.VerifyCrypto.Load() {
		plain, err := Decrypt(body, sub.priv, sub.auth)
		if err != nil {
			fail(http.StatusBadRequest, fmt.Errorf("decrypt: %w", err))
		}
		p.Payload = plain
	}
	if p.Err == nil && ans != nil {
		status = ans.Status
		if ans.RetryAfter != "" {
			w.Header().Set("Retry-After", ans.RetryAfter)
		}
	}
	p.Status = status
	select {
	case s.Pushes <- p:
	default:
	}
	w.WriteHeader(status)
	if ans != nil && ans.Body != "" {
		io.WriteString(w, ans.Body)
	}
}

func validTopic(t string) bool {
	if len(t) > 32 {
		return false
	}
	for _, c := range t {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkVAPID verifies an RFC 8292 Authorization header: "vapid t=<JWT>,
// k=<key>", the key being the server's, the JWT ES256-signed by it, aud the
// endpoint's origin, exp in the future and at most 24 hours away, sub a
// mailto: or https: contact.
func checkVAPID(header string, want []byte, origin string, verifySig bool) (Claims, error) {
	var c Claims
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return c, fmt.Errorf("Authorization %q is not a vapid one", cutForLog(header))
	}
	var token, key string
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if v, ok := strings.CutPrefix(part, "t="); ok {
			token = v
		} else if v, ok := strings.CutPrefix(part, "k="); ok {
			key = v
		}
	}
	k, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil || len(k) != 65 {
		return c, errors.New("vapid k= is not a base64url P-256 point")
	}
	if want != nil && !bytes.Equal(k, want) {
		return c, errors.New("vapid k= is not the server's key")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errors.New("vapid t= is not a JWT")
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return c, errors.New("JWT header is not base64url")
	}
	var h struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Alg != "ES256" {
		return c, fmt.Errorf("JWT header %s: want alg ES256", hdr)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return c, errors.New("JWT claims are not base64url JSON")
	}
	if verifySig {
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || len(sig) != 64 {
			return c, errors.New("JWT signature is not 64 bytes of base64url")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k)
		if err != nil {
			return c, errors.New("vapid k= is not on P-256")
		}
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(pub, digest[:], r, s) {
			return c, errors.New("JWT signature does not verify with k=")
		}
	}
	if c.Aud != origin {
		return c, fmt.Errorf("JWT aud %q, want the endpoint's origin %q", c.Aud, origin)
	}
	now := time.Now().Unix()
	if c.Exp <= now || c.Exp > now+24*3600 {
		return c, fmt.Errorf("JWT exp %d is not within 24 hours from now (%d)", c.Exp, now)
	}
	if !strings.HasPrefix(c.Sub, "mailto:") && !strings.HasPrefix(c.Sub, "https:") {
		return c, fmt.Errorf("JWT sub %q is not a mailto: or https: contact", c.Sub)
	}
	return c, nil
}

func cutForLog(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Decrypt undoes RFC 8291's aes128gcm encryption with the user agent's
// private key and auth secret, as a browser does, and strips the padding.
func Decrypt(body []byte, priv *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	// RFC 8188 header: salt(16) | rs(4) | idlen(1) | keyid(idlen).
	if len(body) < 21 {
		return nil, errors.New("body shorter than the aes128gcm header")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idlen := int(body[20])
	if idlen != 65 || len(body) < 21+idlen {
		return nil, fmt.Errorf("keyid of %d bytes, want the sender's 65-byte public key", idlen)
	}
	senderPub := body[21 : 21+idlen]
	ciphertext := body[21+idlen:]
	if rs < 18 {
		return nil, fmt.Errorf("record size %d too small", rs)
	}
	if len(ciphertext) > int(rs) {
		return nil, fmt.Errorf("ciphertext of %d bytes spans more than one %d-byte record", len(ciphertext), rs)
	}
	asPub, err := ecdh.P256().NewPublicKey(senderPub)
	if err != nil {
		return nil, fmt.Errorf("sender key: %w", err)
	}
	shared, err := priv.ECDH(asPub)
	if err != nil {
		return nil, fmt.Errorf("ecdh: %w", err)
	}
	// RFC 8291 section 3.4.
	info := append([]byte("WebPush: info\x00"), priv.PublicKey().Bytes()...)
	info = append(info, senderPub...)
	ikm, err := hkdf.Key(sha256.New, shared, authSecret, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("open record: %w", err)
	}
	// The last record ends with a 0x02 delimiter followed by zero padding.
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 || plain[i] != 2 {
		return nil, errors.New("last record lacks the 0x02 padding delimiter")
	}
	return plain[:i], nil
}
