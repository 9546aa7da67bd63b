package httpapi

import (
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// mediaCSP boxes in whatever a browser makes of a served file: no
// scripts, no requests, no plugins, even if it is opened as a page.
const mediaCSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"

func errBadMediaLink() error {
	return apiErr(fiber.StatusUnauthorized, codeUnauthorized, "the media link is invalid or has expired; fetch the message again for a fresh one")
}

// mediaAccess finds the media a request may read. With an Authorization
// header it is a tenant-scoped lookup (another tenant's id answers 404,
// as everywhere); without one the URL's exp and sig must be a current
// signature for the media, and anything else answers 401, whether or not
// the id exists. It also says how long the answer may be cached.
func (s *Server) mediaAccess(c *fiber.Ctx) (inbox.MediaRecord, time.Duration, error) {
	id := c.Params("id")
	if tok, ok := bearer(c); ok || c.Get(fiber.HeaderAuthorization) != "" || (c.Query("sig") == "" && c.Query("exp") == "") {
		if !ok {
			return inbox.MediaRecord{}, 0, errNoToken()
		}
		p, err := s.svc.Authenticate(c.UserContext(), tok)
		if err != nil {
			return inbox.MediaRecord{}, 0, err
		}
		rec, err := s.svc.MediaOf(c.UserContext(), p, id)
		if err != nil {
			return inbox.MediaRecord{}, 0, err
		}
		rec.TenantID = p.Tenant.ID
		return rec, time.Hour, nil
	}
	rec, err := s.svc.MediaByID(c.UserContext(), id)
	if inbox.ErrorCode(err) == inbox.CodeNotFound {
		return inbox.MediaRecord{}, 0, errBadMediaLink()
	}
	if err != nil {
		return inbox.MediaRecord{}, 0, err
	}
	exp := c.Query("exp")
	if !s.media.Valid(rec.TenantID, id, exp, c.Query("sig")) {
		return inbox.MediaRecord{}, 0, errBadMediaLink()
	}
	left := time.Hour
	if n, err := strconv.ParseInt(exp, 10, 64); err == nil {
		left = min(left, time.Until(time.Unix(n, 0)))
	}
	return rec, left, nil
}

// serveMedia streams a media's bytes (or its thumbnail) with what a
// browser and a media player need: the type OneBox sniffed, the length,
// an ETag (the content's SHA-256, which never changes for an id), byte
// ranges for seeking in audio and video, and a Content-Disposition that
// makes documents download rather than open in the app's origin.
func (s *Server) serveMedia(c *fiber.Ctx, thumbnail bool) error {
	if s.media == nil {
		return errNoMedia()
	}
	rec, maxAge, err := s.mediaAccess(c)
	if err != nil {
		return err
	}
	f, typ, size, err := s.media.OpenFile(rec, thumbnail)
	if err != nil {
		return err
	}
	etag := `"` + rec.SHA256
	if thumbnail && rec.Thumbnail != "" {
		etag += "-thumb"
	}
	etag += `"`

	h := &c.Response().Header
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderContentSecurityPolicy, mediaCSP)
	h.Set(fiber.HeaderETag, etag)
	h.Set(fiber.HeaderCacheControl, fmt.Sprintf("private, max-age=%d", max(0, int(maxAge/time.Second))))
	h.Set(fiber.HeaderAcceptRanges, "bytes")
	h.Set(fiber.HeaderContentDisposition, contentDisposition(rec, typ, thumbnail))
	h.Set(fiber.HeaderContentType, typ)

	if etagMatch(c.Get(fiber.HeaderIfNoneMatch), etag) {
		f.Close()
		c.Status(fiber.StatusNotModified)
		return nil
	}
	start, n := int64(0), size
	status := fiber.StatusOK
	if rng := c.Get(fiber.HeaderRange); rng != "" && (c.Get(fiber.HeaderIfRange) == "" || c.Get(fiber.HeaderIfRange) == etag) {
		var ok bool
		start, n, ok = parseRange(rng, size)
		switch {
		case !ok:
			start, n = 0, size // a malformed or multi-part range is ignored: the whole file
		case n == 0:
			f.Close()
			h.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", size))
			h.Del(fiber.HeaderContentDisposition)
			return apiErr(fiber.StatusRequestedRangeNotSatisfiable, codeInvalid, "the requested range is outside the file")
		default:
			status = fiber.StatusPartialContent
			h.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, size))
		}
	}
	c.Status(status)
	if c.Method() == fiber.MethodHead {
		f.Close()
		h.SetContentLength(int(n))
		c.Response().SkipBody = true
		return nil
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("seek media: %w", err)
	}
	// fasthttp closes the stream once it is sent (or the client is gone).
	c.Context().SetBodyStream(struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, n), f}, int(n))
	return nil
}

// parseRange reads a single "bytes=" range (RFC 9110 14.1.2) against a
// file of size bytes: start and length, ok false when the header is not
// one range OneBox serves, length 0 when the range is unsatisfiable.
func parseRange(h string, size int64) (start, n int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // suffix: the last N bytes
		k, err := strconv.ParseInt(last, 10, 64)
		if err != nil || k < 0 {
			return 0, 0, false
		}
		if k == 0 || size == 0 {
			return 0, 0, true
		}
		k = min(k, size)
		return size - k, k, true
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, 0, false
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, 0, false
		}
		b = min(b, size-1)
	}
	if a >= size {
		return 0, 0, true
	}
	return a, b - a + 1, true
}

func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// contentDisposition shows pictures, recordings and videos in place and
// makes everything else (PDFs, office files) a download, with the name it
// was uploaded under (RFC 6266, with an ASCII fallback).
func contentDisposition(rec inbox.MediaRecord, typ string, thumbnail bool) string {
	kind := "attachment"
	if k := inbox.MediaKind(typ); k == inbox.KindImage || k == inbox.KindAudio || k == inbox.KindVideo {
		kind = "inline"
	}
	name := rec.Name
	if name == "" {
		name = "media-" + rec.ID
		if exts, _ := mime.ExtensionsByType(typ); len(exts) > 0 {
			name += exts[0]
		}
	}
	if thumbnail && rec.Thumbnail != "" {
		name = "thumbnail-" + name
	}
	var ascii, utf strings.Builder
	for _, r := range name {
		if r >= 0x20 && r < 0x7f && r != '"' && r != '\\' {
			ascii.WriteRune(r)
		} else {
			ascii.WriteByte('_')
		}
	}
	for _, b := range []byte(name) {
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("!#$&+-.^_`|~", b) >= 0 {
			utf.WriteByte(b)
		} else {
			fmt.Fprintf(&utf, "%%%02X", b)
		}
	}
	return kind + `; filename="` + ascii.String() + `"; filename*=UTF-8''` + utf.String()
}
