package httpapi

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onebox/onebox/internal/media"
)

// TestNoRouteSetsCookies: OneBox authenticates with bearer tokens only, so
// a cross-site request has no ambient credential to ride on. Every route of
// the table (called as an admin of the tenant that owns the ids, with the
// bodies the access test uses), a sign-in and sign-out that succeed, the
// PWA's pages and the error answers must come back without Set-Cookie. A
// cookie added later must be HttpOnly, Secure and SameSite=Strict, and this
// test is where to say so.
func TestNoRouteSetsCookies(t *testing.T) {
	h := newHarness(t, withConfig(func(cfg *Config) {
		ms, err := media.New(context.Background(), media.Config{
			Dir: filepath.Join(t.TempDir(), "media"), Service: cfg.Service, MaxSize: 1 << 20,
		})
		if err != nil {
			t.Fatalf("media store: %v", err)
		}
		cfg.Service.SetMediaURLs(ms.SignURLs)
		cfg.Media, cfg.MaxUpload, cfg.Static = ms, 1<<20, pwa()
	}))
	tm := h.newTeam("Acme")
	convID, msgID := h.receive(tm, "+15550001", "hello")
	var conv struct {
		Conversation struct {
			Contact struct {
				ID string `json:"id"`
			} `json:"contact"`
		} `json:"conversation"`
	}
	h.want(h.req("GET", "/api/v1/conversations/"+convID, tm.adminToken, nil), 200).json(t, &conv)
	product := h.createProduct(tm.adminToken, map[string]any{"sku": "A-1", "title": "Thing", "price": price(100, "EUR")})
	media := h.uploadOK(tm.agentToken, "doc.pdf", pdfBytes(64))
	ids := map[string]string{
		"agents/:id": tm.agentID, "keys/:key_id": tm.agentKeyID, "channels/:id": tm.channelID,
		"conversations/:id": convID, "messages/:id": msgID, "products/:id": product.ID,
		"media/:id": media.ID, "contacts/:id": conv.Conversation.Contact.ID,
		"whatsapp/:channel_id": tm.channelID, "tiktok/:channel_id": tm.channelID, "sms/:channel_id": tm.channelID,
		"meta/:channel_id": tm.channelID, "deletion/:code": "unknown-code",
	}

	noCookie := func(what string, r *response) {
		t.Helper()
		if c := r.header.Values("Set-Cookie"); len(c) > 0 {
			t.Errorf("%s (%d) sets a cookie: %q", what, r.status, c)
		}
	}
	// The session routes, succeeding: where a cookie would most likely be
	// added.
	var sess struct {
		Token string `json:"token"`
	}
	r := h.want(h.req("POST", "/api/v1/session", "", signInBody(tm.agentKey)), 201)
	r.json(t, &sess)
	noCookie("sign-in", r)
	noCookie("sign-out", h.want(h.req("DELETE", "/api/v1/session", sess.Token, nil), 204))
	noCookie("failed sign-in", h.req("POST", "/api/v1/session", "", signInBody("obx_wrong")))

	// Every route of the table. DELETEs go last so the others find their
	// ids.
	routes := h.srv.routes()
	var deletes []route
	called := 0
	call := func(rt route) {
		path, ok := fill(rt.path, ids)
		if !ok {
			t.Errorf("%s %s: no id for %v", rt.method, rt.path, pathParams(rt.path))
			return
		}
		if rt.path == "/api/v1/session" {
			return // above, with its own token
		}
		var body any
		if b, ok := routeBodies[rt.method+" "+rt.path]; ok {
			body = b
		} else if rt.method != "GET" && rt.method != "DELETE" {
			body = map[string]any{}
		}
		noCookie(rt.method+" "+rt.path, h.req(rt.method, path, tm.adminToken, body))
		called++
	}
	for _, rt := range routes {
		if rt.method == "DELETE" {
			deletes = append(deletes, rt)
			continue
		}
		call(rt)
	}
	for _, rt := range deletes {
		call(rt)
	}
	if called < len(routes)-2 {
		t.Errorf("called %d of %d routes", called, len(routes))
	}

	// The PWA and the catch-alls.
	for _, p := range []string{"/", "/index.html", "/sw.js", "/conversations/42", "/missing.png", "/api/v1/nope"} {
		noCookie("GET "+p, h.req("GET", p, "", nil))
	}
	noCookie("oversized body", h.req("POST", "/api/v1/tenants", "", raw(`{"name":"`+strings.Repeat("x", 70<<10)+`"}`)))
}
