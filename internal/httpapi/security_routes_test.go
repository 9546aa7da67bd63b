package httpapi

import (
	"strings"
	"testing"
)

// publicRoutes are the routes that take no session, each with the
// credential it carries instead. A new public route must be added here
// with its reason, or TestRouteAccess fails.
var publicRoutes = map[string]string{
	"POST /api/v1/tenants":                          "operator token",
	"POST /api/v1/operator/inbound":                 "operator token",
	"GET " + backupPath:                             "operator token",
	"POST /api/v1/session":                          "access key in the body",
	"GET /api/v1/media/:id":                         "signed URL or bearer token, checked by the handler",
	"GET /api/v1/media/:id/thumbnail":               "signed URL or bearer token, checked by the handler",
	"GET /api/v1/ws":                                "hello frame carries the session token",
	"GET /webhooks/whatsapp/:channel_id":            "provider verify token",
	"POST /webhooks/whatsapp/:channel_id":           "provider signature",
	"POST /webhooks/tiktok/:channel_id":             "provider signature",
	"POST /webhooks/sms/:channel_id":                "provider signature",
	"POST /webhooks/meta/:channel_id/data-deletion": "provider signed request",
	"GET /privacy/deletion/:code":                   "status page for an unguessable confirmation code",
	"GET /healthz":                                  "liveness probe",
	"GET /readyz":                                   "readiness probe",
	"GET /metrics":                                  "metrics scrape, no tenant data",
}

// routeBodies are request bodies valid enough that a handler reaches its
// lookup, so a cross-tenant id is judged by the lookup, not by validation.
var routeBodies = map[string]any{
	"PATCH /api/v1/conversations/:id":         map[string]any{"status": "closed"},
	"POST /api/v1/conversations/:id/read":     map[string]any{},
	"POST /api/v1/conversations/:id/messages": map[string]any{"client_id": "c0000000-0000-7000-8000-000000000001", "text": "hello"},
	"POST /api/v1/messages/:id/retry":         map[string]any{},
	"PATCH /api/v1/catalog/products/:id":      map[string]any{"title": "Renamed"},
	"POST /api/v1/agents/:id/keys":            map[string]any{"label": "laptop"},
}

// pathParams lists a route template's parameters with the segment before
// each, e.g. "agents/:id", "keys/:key_id": the same name means different
// things under different collections.
func pathParams(path string) []string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var out []string
	for i, s := range segs {
		if strings.HasPrefix(s, ":") && i > 0 {
			out = append(out, segs[i-1]+"/"+s)
		}
	}
	return out
}

// fill puts ids into a route template.
func fill(path string, ids map[string]string) (string, bool) {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			id, ok := ids[segs[i-1]+"/"+s]
			if !ok {
				return "", false
			}
			segs[i] = id
		}
	}
	return strings.Join(segs, "/"), true
}

// TestRouteAccess walks the route table: every non-public route refuses a
// missing token, every admin route refuses an agent whatever the id, and
// every route with an id answers 404 to another tenant's credentials
// without changing anything.
func TestRouteAccess(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	a := h.newTeam("Acme")
	b := h.newTeam("Globex")

	convID, msgID := h.receive(a, "+15550001", "hello from A")
	var conv struct {
		Conversation struct {
			Contact struct {
				ID string `json:"id"`
			} `json:"contact"`
		} `json:"conversation"`
	}
	h.want(h.req("GET", "/api/v1/conversations/"+convID, a.adminToken, nil), 200).json(t, &conv)
	product := h.createProduct(a.adminToken, map[string]any{"sku": "A-1", "title": "Thing", "price": price(100, "EUR")})
	media := h.uploadOK(a.agentToken, "doc.pdf", pdfBytes(64))
	if conv.Conversation.Contact.ID == "" || product.ID == "" || media.ID == "" {
		t.Fatalf("fixtures incomplete: contact %q product %q media %q", conv.Conversation.Contact.ID, product.ID, media.ID)
	}

	// Tenant A's real ids, by the segment before the parameter.
	ids := map[string]string{
		"agents/:id":           a.agentID,
		"keys/:key_id":         a.agentKeyID,
		"channels/:id":         a.channelID,
		"conversations/:id":    convID,
		"messages/:id":         msgID,
		"products/:id":         product.ID,
		"media/:id":            media.ID,
		"contacts/:id":         conv.Conversation.Contact.ID,
		"whatsapp/:channel_id": a.channelID,
		"tiktok/:channel_id":   a.channelID,
		"sms/:channel_id":      a.channelID,
		"meta/:channel_id":     a.channelID,
		"deletion/:code":       "unknown-code",
	}

	seenPublic := map[string]bool{}
	for _, rt := range h.srv.routes() {
		key := rt.method + " " + rt.path
		path, ok := fill(rt.path, ids)
		if !ok {
			t.Errorf("%s: no fixture for its path parameters %v; add tenant A's id for it to TestRouteAccess", key, pathParams(rt.path))
			continue
		}
		if rt.access == public {
			seenPublic[key] = true
			if _, ok := publicRoutes[key]; !ok {
				t.Errorf("%s is public but not listed in publicRoutes with the credential it checks", key)
			}
			continue
		}
		if _, ok := publicRoutes[key]; ok {
			t.Errorf("%s is listed as public but the table says it needs a session", key)
		}
		body := routeBodies[key]

		t.Run(key, func(t *testing.T) {
			checkErr(t, h.req(rt.method, path, "", body), 401, "unauthorized")
			if rt.access == admin {
				checkErr(t, h.req(rt.method, path, a.agentToken, body), 403, "forbidden")
				bogusIDs := map[string]string{}
				for _, p := range pathParams(rt.path) {
					bogusIDs[p] = "no-such-id"
				}
				bogus, _ := fill(rt.path, bogusIDs)
				checkErr(t, h.req(rt.method, bogus, a.agentToken, body), 403, "forbidden")
			}
			if len(pathParams(rt.path)) > 0 {
				before := h.head(a.adminToken)
				checkErr(t, h.req(rt.method, path, b.adminToken, body), 404, "not_found")
				if rt.access == member {
					checkErr(t, h.req(rt.method, path, b.agentToken, body), 404, "not_found")
				}
				h.unchanged(a.adminToken, before)
			}
		})
	}
	for key := range publicRoutes {
		if !seenPublic[key] {
			t.Errorf("publicRoutes lists %s, which is not a public route in the table", key)
		}
	}

	// Media is public in the table (its URL may carry a signature), but a
	// bearer token of another tenant still finds nothing.
	for _, p := range []string{"/api/v1/media/" + media.ID, "/api/v1/media/" + media.ID + "/thumbnail"} {
		checkErr(t, h.req("GET", p, b.adminToken, nil), 404, "not_found")
	}

	// A's data is all still there.
	h.want(h.req("GET", "/api/v1/conversations/"+convID, a.agentToken, nil), 200)
	h.want(h.req("GET", "/api/v1/catalog/products/"+product.ID, a.agentToken, nil), 200)
	h.want(h.req("GET", "/api/v1/agents/"+a.agentID+"/keys", a.adminToken, nil), 200)
	h.want(h.req("GET", "/api/v1/media/"+media.ID, a.agentToken, nil), 200)
}
