package httpapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"path"
	"sort"
	"strings"
	"sync"

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
// app. In index.html and sw.js the placeholder __ONEBOX_VERSION__ becomes
// the build version (a hash of every file), which names the worker's cache:
// any change to any file installs a new worker and drops the old cache.
// Text files are gzipped for clients that accept it, so the app shell stays
// small on slow phone networks.
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
	data, err := s.staticFile(name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !isDirErr(s.static, name) {
			return fmt.Errorf("read static file %s: %w", name, err)
		}
		if path.Ext(name) != "" {
			return c.Next()
		}
		name = "index.html"
		if data, err = s.staticFile(name); err != nil {
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
	compressible := compressible(name) && len(data) >= minGzip
	if compressible {
		c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	}
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	if compressible && acceptsGzip(c.Get(fiber.HeaderAcceptEncoding)) {
		gz, err := s.assets.gzipped(name, data)
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Send(gz)
	}
	return c.Send(data)
}

// versionPlaceholder is replaced by the build version in versioned files.
const versionPlaceholder = "__ONEBOX_VERSION__"

// minGzip is the size under which gzip's header costs more than it saves.
const minGzip = 512

// staticAssets caches what the server derives from the app's files: the
// build version and gzipped bodies. The files are embedded and never change
// while the process runs, so both are computed once.
type staticAssets struct {
	once    sync.Once
	version string
	err     error
	gz      sync.Map // name -> []byte
}

// staticFile reads name from the app, with the build version substituted
// in the files that carry it.
func (s *Server) staticFile(name string) ([]byte, error) {
	data, err := fs.ReadFile(s.static, name)
	if err != nil || (name != "index.html" && name != "sw.js") {
		return data, err
	}
	v, err := s.StaticVersion()
	if err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(data, []byte(versionPlaceholder), []byte(v)), nil
}

// StaticVersion is the app's build version: the first 16 hex digits of a
// SHA-256 over every file's path and bytes. Empty when there is no app.
func (s *Server) StaticVersion() (string, error) {
	if s.static == nil {
		return "", nil
	}
	a := &s.assets
	a.once.Do(func() { a.version, a.err = hashFS(s.static) })
	return a.version, a.err
}

func hashFS(fsys fs.FS) (string, error) {
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !hiddenPath(p) {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("list app files: %w", err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", fmt.Errorf("read app file %s: %w", n, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (a *staticAssets) gzipped(name string, data []byte) ([]byte, error) {
	if v, ok := a.gz.Load(name); ok {
		return v.([]byte), nil
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(data); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", name, err)
	}
	a.gz.Store(name, buf.Bytes())
	return buf.Bytes(), nil
}

func compressible(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt", ".map", ".webmanifest":
		return true
	}
	return false
}

// acceptsGzip reads Accept-Encoding loosely: gzip listed without q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") || strings.TrimSpace(coding) == "*" {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
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
