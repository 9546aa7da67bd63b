package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// serveStatic serves the PWA. It is registered after every route as a
// catch-all middleware rather than a GET /* route: a GET /* route would make
// Fiber answer 405 instead of 404 for unknown API paths with other methods.
//
//   - "/" and app routes (extension-less paths such as /conversations/42,
//     which the app's router handles in the browser) get index.html;
//   - existing files get their bytes with a content type by extension;
//   - /api/..., /webhooks/..., non-GET methods and missing files with an
//     extension fall through to Fiber, whose 404 (or 405) becomes JSON.
//
// Every file is sent with Cache-Control: no-cache and a content ETag, so
// browsers revalidate cheaply and never mix two releases' modules; the
// service worker does the offline caching. sw.js also gets
// Service-Worker-Allowed: / so, served from the root, it controls the whole
// app.
func (s *Server) serveStatic(c *fiber.Ctx) error {
	method, p := c.Method(), c.Path()
	if s.static == nil || (method != fiber.MethodGet && method != fiber.MethodHead) || backendPath(p) {
		return c.Next()
	}
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	if name == "" {
		name = "index.html"
	}
	if !fs.ValidPath(name) || hiddenPath(name) {
		return c.Next()
	}
	data, err := fs.ReadFile(s.static, name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !isDirErr(s.static, name) {
			return fmt.Errorf("read static file %s: %w", name, err)
		}
		if path.Ext(name) != "" {
			return c.Next()
		}
		name = "index.html"
		if data, err = fs.ReadFile(s.static, name); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return c.Next()
			}
			return fmt.Errorf("read static file %s: %w", name, err)
		}
	}
	c.Locals(keyRoute, s.staticRI)

	sum := sha256.Sum256(data)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	if name == "sw.js" {
		c.Set("Service-Worker-Allowed", "/")
	}
	c.Set(fiber.HeaderContentType, contentType(name))
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.Send(data)
}

// backendPath reports whether p belongs to the server rather than the app,
// so a typo in an API path answers 404 JSON instead of the app's HTML.
func backendPath(p string) bool {
	return p == "/api" || strings.HasPrefix(p, "/api/") ||
		p == "/webhooks" || strings.HasPrefix(p, "/webhooks/")
}

// hiddenPath refuses dotfiles and dot-directories, which are never part of
// the app and may be editor or VCS leftovers when Static is a directory.
func hiddenPath(name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return true
		}
	}
	return false
}

func isDirErr(fsys fs.FS, name string) bool {
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.IsDir()
}

func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// contentType names the types the PWA needs explicitly, since the system's
// MIME table (which mime.TypeByExtension reads) varies between hosts and
// browsers refuse modules and service workers served with the wrong type.
func contentType(name string) string {
	switch ext := strings.ToLower(path.Ext(name)); ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".webmanifest":
		return "application/manifest+json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".woff2":
		return "font/woff2"
	case ".txt":
		return "text/plain; charset=utf-8"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
		return "application/octet-stream"
	}
}
