package httpapi

import (
	"strings"
	"testing"
	"testing/fstest"
)

func pwa() fstest.MapFS {
	return fstest.MapFS{
		"index.html":           {Data: []byte("<!doctype html><title>OneBox</title>")},
		"sw.js":                {Data: []byte("self.addEventListener('fetch', () => {})")},
		"app.js":               {Data: []byte("import './x.js'")},
		"style.css":            {Data: []byte("body{}")},
		"manifest.webmanifest": {Data: []byte(`{"name":"OneBox"}`)},
		"icons/icon.png":       {Data: []byte("\x89PNG\r\n\x1a\n")},
		".env":                 {Data: []byte("SECRET=1")},
	}
}

func TestStatic(t *testing.T) {
	h := newHarness(t, withConfig(func(c *Config) { c.Static = pwa() }))

	index := h.want(h.req("GET", "/", "", nil), 200)
	if string(index.body) != "<!doctype html><title>OneBox</title>" || index.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("/ = %s (%s)", index.body, index.header.Get("Content-Type"))
	}
	checkSecurityHeaders(t, "index.html", index)
	if cc := index.header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("index.html Cache-Control = %q", cc)
	}

	sw := h.want(h.req("GET", "/sw.js", "", nil), 200)
	if sw.header.Get("Cache-Control") != "no-cache" || sw.header.Get("Service-Worker-Allowed") != "/" ||
		sw.header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("sw.js headers: %v", sw.header)
	}

	for path, ct := range map[string]string{
		"/app.js":               "text/javascript; charset=utf-8",
		"/style.css":            "text/css; charset=utf-8",
		"/manifest.webmanifest": "application/manifest+json",
		"/icons/icon.png":       "image/png",
		"/index.html":           "text/html; charset=utf-8",
	} {
		r := h.want(h.req("GET", path, "", nil), 200)
		if got := r.header.Get("Content-Type"); got != ct {
			t.Errorf("%s Content-Type = %q, want %q", path, got, ct)
		}
		if r.header.Get("Service-Worker-Allowed") != "" {
			t.Errorf("%s has Service-Worker-Allowed", path)
		}
	}

	// App routes get the app; missing files and backend paths get JSON 404.
	for _, path := range []string{"/conversations/42", "/settings", "/icons"} {
		r := h.want(h.req("GET", path, "", nil), 200)
		if !strings.HasPrefix(string(r.body), "<!doctype html>") {
			t.Errorf("%s = %s, want index.html", path, r.body)
		}
	}
	for _, path := range []string{"/missing.png", "/icons/nope.svg", "/.env", "/api/nope", "/api/v1/conversations/x/nope", "/webhooks/nope"} {
		checkErr(t, h.req("GET", path, "", nil), 404, "not_found")
	}
	checkErr(t, h.req("POST", "/", "", raw(`{}`)), 404, "not_found")
	// Dot segments are resolved inside the app's root, never above it.
	checkErr(t, h.req("GET", "/../../icons/../.env", "", nil), 404, "not_found")
	checkErr(t, h.req("GET", "/%2e%2e/%2e%2e/etc/passwd.txt", "", nil), 404, "not_found")

	// Revalidation.
	etag := sw.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if r := h.req("GET", "/sw.js", "", nil, "If-None-Match", etag); r.status != 304 || len(r.body) != 0 {
		t.Errorf("If-None-Match: got %s, want 304", r)
	}
	if r := h.req("GET", "/sw.js", "", nil, "If-None-Match", `"other"`); r.status != 200 {
		t.Errorf("stale If-None-Match: got %d", r.status)
	}
	if r := h.req("HEAD", "/app.js", "", nil); r.status != 200 || len(r.body) != 0 {
		t.Errorf("HEAD: %s", r)
	}
}

func TestNoStatic(t *testing.T) {
	h := newHarness(t)
	checkErr(t, h.req("GET", "/", "", nil), 404, "not_found")
	checkErr(t, h.req("GET", "/conversations/1", "", nil), 404, "not_found")
}

// TestStaticVersion: index.html and sw.js carry the build version, a hash
// of every file, which changes when any file does; text is gzipped for
// clients that accept it.
func TestStaticVersion(t *testing.T) {
	files := fstest.MapFS{
		"index.html": {Data: []byte(`<meta name="v" content="__ONEBOX_VERSION__">`)},
		"sw.js":      {Data: []byte(`const VERSION = "__ONEBOX_VERSION__";` + strings.Repeat("// padding\n", 100))},
		"app.js":     {Data: []byte(`"__ONEBOX_VERSION__"`)},
	}
	h := newHarness(t, withConfig(func(c *Config) { c.Static = files }))
	sw := string(h.want(h.req("GET", "/sw.js", "", nil), 200).body)
	idx := string(h.want(h.req("GET", "/", "", nil), 200).body)
	v := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(sw, "\n", 2)[0], `const VERSION = "`), `";// padding`)
	if len(v) != 16 || strings.Contains(sw, "__ONEBOX_VERSION__") || !strings.Contains(idx, v) {
		t.Fatalf("version %q; sw.js starts %q; index.html %q", v, sw[:60], idx)
	}
	// Other files are served as they are.
	if app := string(h.want(h.req("GET", "/app.js", "", nil), 200).body); app != `"__ONEBOX_VERSION__"` {
		t.Errorf("app.js = %q", app)
	}

	gz := h.req("GET", "/sw.js", "", nil, "Accept-Encoding", "gzip, deflate")
	if gz.status != 200 || gz.header.Get("Content-Encoding") != "gzip" || gz.header.Get("Vary") != "Accept-Encoding" || len(gz.body) >= len(sw) {
		t.Errorf("gzip: status %d, headers %v, %d bytes for %d", gz.status, gz.header, len(gz.body), len(sw))
	}
	if r := h.req("GET", "/sw.js", "", nil, "Accept-Encoding", "gzip;q=0"); r.header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got Content-Encoding %q", r.header.Get("Content-Encoding"))
	}

	other := fstest.MapFS{"index.html": files["index.html"], "sw.js": files["sw.js"], "app.js": {Data: []byte(`changed`)}}
	h2 := newHarness(t, withConfig(func(c *Config) { c.Static = other }))
	if sw2 := string(h2.want(h2.req("GET", "/sw.js", "", nil), 200).body); strings.Contains(sw2, v) {
		t.Error("changing app.js did not change the version")
	}
}
