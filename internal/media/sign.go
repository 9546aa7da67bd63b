package media

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// signer makes and checks the signatures that let a media URL work
// without an Authorization header (an <img src>, a provider fetching an
// attachment). A signature is bound to the tenant, the media id and an
// expiry, so it cannot be moved to another file or kept forever.
type signer struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

func (s signer) mac(tenant, id string, exp int64) string {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte("onebox media url\x00" + tenant + "\x00" + id + "\x00" + strconv.FormatInt(exp, 10)))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// expiry rounds now+ttl up to the next whole hour, so the same media
// gets the same URL for an hour and browsers can cache it.
func (s signer) expiry(ttl time.Duration) int64 {
	at := s.now().Add(ttl).Unix()
	const hour = 3600
	return (at + hour - 1) / hour * hour
}

// query is the "exp=...&sig=..." that makes a URL usable until ttl from now.
func (s signer) query(tenant, id string, ttl time.Duration) string {
	exp := s.expiry(ttl)
	return "exp=" + strconv.FormatInt(exp, 10) + "&sig=" + s.mac(tenant, id, exp)
}

// valid checks a URL's exp and sig for the tenant's media id.
func (s signer) valid(tenant, id, exp, sig string) bool {
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || sig == "" || s.now().Unix() > n {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(s.mac(tenant, id, n)))
}

// Path is the API path of a media's bytes.
func Path(id string) string { return "/api/v1/media/" + id }

// ThumbnailPath is the API path of an image's small preview.
func ThumbnailPath(id string) string { return "/api/v1/media/" + id + "/thumbnail" }

// SignURLs fills in m's url (and, for images, thumbnail_url) as paths
// with a signature valid for the store's URL lifetime. It is the
// inbox.MediaURLs hook: the service calls it for every media object it
// shows.
func (s *Store) SignURLs(tenant string, m *inbox.Media) {
	if m == nil || m.ID == "" {
		return
	}
	q := s.sign.query(tenant, m.ID, s.sign.ttl)
	m.URL = Path(m.ID) + "?" + q
	m.ThumbnailURL = ""
	if strings.HasPrefix(m.Mime, "image/") {
		m.ThumbnailURL = ThumbnailPath(m.ID) + "?" + q
	}
}

// Valid reports whether exp and sig, from a media URL's query, are a
// current signature for the tenant's media id.
func (s *Store) Valid(tenant, id, exp, sig string) bool { return s.sign.valid(tenant, id, exp, sig) }

// PublicURL is an absolute URL of the media that works without
// credentials until ttl from now, for providers that fetch attachments
// themselves (WhatsApp and TikTok accept a link instead of an upload).
// It is built on the configured public URL, which they must be able to
// reach.
func (s *Store) PublicURL(tenant, id string, ttl time.Duration) string {
	if ttl <= 0 {
		ttl = s.sign.ttl
	}
	return s.publicURL + Path(id) + "?" + s.sign.query(tenant, id, ttl)
}
