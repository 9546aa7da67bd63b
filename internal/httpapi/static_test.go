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
