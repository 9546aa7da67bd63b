package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/channel/sms"
	"github.com/onebox/onebox/internal/channel/tiktok"
	"github.com/onebox/onebox/internal/channel/whatsapp"
	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/push/webpush"
	"github.com/onebox/onebox/internal/ws"
)

// credential is what a public route takes instead of a session. Each one
// has a check in checkCredential that sends the route a request without
// it (or with a forged one) and wants the contract's refusal, so a public
// route whose handler forgets its check fails TestRouteAccess.
type credential string

const (
	credNone        credential = "none"                 // probes: must show no tenant data
	credOperator    credential = "operator token"       // 401 without it, 404 when unset
	credAccessKey   credential = "access key"           // in the body; 401 when wrong
	credSignedMedia credential = "signed media URL"     // or a bearer token; 401 otherwise
	credHello       credential = "hello frame"          // the session token, in the first frame
	credVerifyToken credential = "channel verify token" // Meta's subscription check; 403 otherwise
	credSignature   credential = "provider signature"   // 401 and nothing stored otherwise
	credMetaSigned  credential = "Meta signed request"  // 401 when forged
	credCode        credential = "confirmation code"    // unguessable; 404 when unknown
)

// publicRoutes are the routes that take no session, each with the
// credential it carries instead. A new public route must be added here,
// or TestRouteAccess fails.
var publicRoutes = map[string]credential{
	"POST /api/v1/tenants":                          credOperator,
	"POST /api/v1/operator/inbound":                 credOperator,
	"GET " + backupPath:                             credOperator,
	"POST /api/v1/session":                          credAccessKey,
	"GET /api/v1/media/:id":                         credSignedMedia,
	"GET /api/v1/media/:id/thumbnail":               credSignedMedia,
	"GET /api/v1/ws":                                credHello,
	"GET /webhooks/whatsapp/:channel_id":            credVerifyToken,
	"POST /webhooks/whatsapp/:channel_id":           credSignature,
	"POST /webhooks/tiktok/:channel_id":             credSignature,
	"POST /webhooks/sms/:channel_id":                credSignature,
	"POST /webhooks/meta/:channel_id/data-deletion": credMetaSigned,
	"GET /privacy/deletion/:code":                   credCode,
	"GET /healthz":                                  credNone,
	"GET /readyz":                                   credNone,
	"GET /metrics":                                  credNone,
}

// showsNoTenantData are the tenant-scoped GET routes without an id whose
// answer holds nothing of a tenant's own, so the list check below cannot
// prove anything with them. Every other such route must show tenant A
// its own seeded data, which is what makes "B sees none of it" mean
// something.
var showsNoTenantData = map[string]string{
	"GET /api/v1/push/webpush/key": "the server's VAPID key, the same for every tenant",
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

const accessOperatorToken = "route-access-operator-token-5b1e"

// webhookFixture is a delivery a provider route accepts when it carries
// the right signature.
type webhookFixture struct {
	secret string
	body   []byte
	sign   func(secret string, body []byte) (header, value string)
}

// accessWorld is tenant A, seeded with data no other tenant has, and
// tenant B, on a server with every optional part configured.
type accessWorld struct {
	h            *harness
	a, b         *team
	ids          map[string]string // tenant A's ids by the segment before the parameter
	markers      []string          // strings only tenant A's data contains
	media        mediaJSON
	otherMedia   mediaJSON
	verifyToken  string
	webhooks     map[string]webhookFixture // by route key
	metaSecret   string
	deletionCode string
}

func newAccessWorld(t *testing.T) *accessWorld {
	t.Helper()
	var stream *ws.Server
	var live *hub.Hub
	clk := &mediaClock{}
	h := newHarness(t, withMedia(t, 1<<20, clk), withConfig(func(cfg *Config) {
		cfg.OperatorToken = accessOperatorToken
		cfg.Webhooks = map[string]channel.Webhook{
			inbox.ChannelWhatsApp: whatsapp.NewWebhook(whatsapp.WebhookConfig{Inbox: cfg.Service, Logger: cfg.Logger}),
			inbox.ChannelTikTok:   tiktok.NewWebhook(tiktok.WebhookConfig{Inbox: cfg.Service, Logger: cfg.Logger}),
			inbox.ChannelSMS:      sms.NewWebhook(cfg.Service),
		}
		live = hub.New(hub.Options{})
		// A short hello timeout lets the test watch a silent socket be
		// closed instead of waiting the contract's 5 s.
		stream = ws.NewServer(ws.Options{Backend: cfg.Service, Hub: live, Logger: cfg.Logger, HelloTimeout: 300 * time.Millisecond})
		cfg.WebSocket = stream.ServeConn
	}))
	// Runs before the harness's own cleanup: sockets first, as the
	// server does on shutdown.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stream.Shutdown(ctx); err != nil {
			t.Errorf("websocket shutdown: %v", err)
		}
		live.Close()
	})
	if _, err := h.svc.EnsureVAPIDKeys(context.Background(), webpush.GenerateKeys); err != nil {
		t.Fatalf("vapid keys: %v", err)
	}
	w := &accessWorld{h: h, a: h.newTeam("Acme"), b: h.newTeam("Globex"),
		verifyToken: "acme-verify-token-31c2", metaSecret: "acme-app-secret-77d0"}
	a := w.a

	const (
		contactName = "Zebulon Acmeonly"
		handle      = "+15559990001"
		text        = "acme-secret-order-7731"
		label       = "acme-label-vip"
		sku         = "ACME-SKU-991"
		title       = "Acme Anvil Deluxe"
	)
	convID, msgID := h.receiveNamed(a, handle, contactName, text)
	h.want(h.req("PATCH", "/api/v1/conversations/"+convID, a.adminToken, map[string]any{"labels": []string{label}, "assignee_id": a.agentID}), 200)
	var conv struct {
		Conversation struct {
			Contact struct {
				ID string `json:"id"`
			} `json:"contact"`
		} `json:"conversation"`
	}
	h.want(h.req("GET", "/api/v1/conversations/"+convID, a.adminToken, nil), 200).json(t, &conv)
	product := h.createProduct(a.adminToken, map[string]any{"sku": sku, "title": title, "price": price(100, "EUR")})
	w.media = h.uploadOK(a.agentToken, "acme-invoice.png", pngBytes(t, 400, 300))
	w.otherMedia = h.uploadOK(a.agentToken, "acme-other.pdf", pdfBytes(64))
	h.want(h.req("PUT", "/api/v1/settings/retention", a.adminToken, map[string]any{"messages_days": 4242}), 200)
	h.want(h.req("PUT", "/api/v1/settings/push", a.adminToken, map[string]any{"private": true}), 200)
	if conv.Conversation.Contact.ID == "" || product.ID == "" || w.media.ID == "" || w.otherMedia.ID == "" {
		t.Fatalf("fixtures incomplete: contact %q product %q media %q %q", conv.Conversation.Contact.ID, product.ID, w.media.ID, w.otherMedia.ID)
	}

	channelOf := func(typ, name string, cfg map[string]any) string {
		var ch struct {
			Channel struct {
				ID string `json:"id"`
			} `json:"channel"`
		}
		h.want(h.req("POST", "/api/v1/channels", a.adminToken, map[string]any{"type": typ, "name": name, "config": cfg}), 201).json(t, &ch)
		return ch.Channel.ID
	}
	waID := channelOf("whatsapp", "acme-whatsapp-line", map[string]any{
		"phone_number_id": "106540352242922", "access_token": "acme-wa-token", "app_secret": w.metaSecret, "verify_token": w.verifyToken})
	ttID := channelOf("tiktok", "acme-tiktok-shop", map[string]any{
		"business_id": "7374937459228475397", "access_token": "acme-tt-token", "client_secret": "acme-tt-secret-902a"})
	smsID := channelOf("sms", "acme-sms-gateway", map[string]any{
		"send_url": "http://127.0.0.1:9/send", "auth_token": "acme-sms-auth", "webhook_secret": "acme-sms-secret-4e1b"})

	waBody := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Customer"},"wa_id":"16505550001"}],"messages":[{"from":"16505550001","id":"wamid.route-access-1","timestamp":"1749416383","text":{"body":"Hello"},"type":"text"}]},"field":"messages"}]}]}`)
	ttBody := []byte(`{"client_key":"aw9x4t1v2kq8e5z3","event":"im_receive_msg","create_time":1749416383,"user_openid":"7374937459228475397","content":"{\"conversation_id\":\"c1\",\"message_id\":\"route-access-1\",\"timestamp\":1749416383123,\"type\":\"text\",\"from\":\"mia.styles\",\"from_user\":{\"id\":\"7290014565934532613\",\"role\":\"personal_account\"},\"to\":\"shop_official\",\"to_user\":{\"id\":\"7374937459228475397\",\"role\":\"business_account\"},\"text\":{\"body\":\"Is it in stock?\"}}"}`)
	smsBody := []byte(`{"from":"+15550107777","to":"+15550100000","text":"hi","id":"gw-route-access-1","timestamp":"2026-01-02T03:04:05Z"}`)
	w.webhooks = map[string]webhookFixture{
		"POST /webhooks/whatsapp/:channel_id": {w.metaSecret, waBody, func(s string, b []byte) (string, string) {
			return whatsapp.SignatureHeader, whatsapp.Sign(s, b)
		}},
		"POST /webhooks/tiktok/:channel_id": {"acme-tt-secret-902a", ttBody, func(s string, b []byte) (string, string) {
			return tiktok.SignatureHeader, tiktok.Sign(s, b, time.Now())
		}},
		"POST /webhooks/sms/:channel_id": {"acme-sms-secret-4e1b", smsBody, func(s string, b []byte) (string, string) {
			return sms.SignatureHeader, sms.Sign(s, b)
		}},
	}

	ch, err := h.svc.ChannelByID(context.Background(), waID)
	if err != nil {
		t.Fatal(err)
	}
	job, err := h.svc.RequestErasure(context.Background(), ch, "16505559999", "meta", "127.0.0.1")
	if err != nil {
		t.Fatalf("request erasure: %v", err)
	}
	w.deletionCode = job.Code

	w.ids = map[string]string{
		"agents/:id":           a.agentID,
		"keys/:key_id":         a.agentKeyID,
		"channels/:id":         a.channelID,
		"conversations/:id":    convID,
		"messages/:id":         msgID,
		"products/:id":         product.ID,
		"media/:id":            w.media.ID,
		"contacts/:id":         conv.Conversation.Contact.ID,
		"whatsapp/:channel_id": waID,
		"tiktok/:channel_id":   ttID,
		"sms/:channel_id":      smsID,
		"meta/:channel_id":     waID,
		"deletion/:code":       w.deletionCode,
	}
	w.markers = []string{
		a.tenantID, a.adminID, a.agentID, a.agentKeyID, a.agentKey[:12], a.channelID, waID, ttID, smsID,
		convID, msgID, conv.Conversation.Contact.ID, product.ID, w.media.ID, w.otherMedia.ID, w.media.SHA256,
		"Ada Acme", "ada@acme.example", contactName, handle, text, label, sku, title,
		"acme-whatsapp-line", "acme-tiktok-shop", "acme-sms-gateway", "acme-invoice.png",
		`"messages_days":4242`, `"private":true`,
	}
	// Tenant B has data of its own, so its lists are not empty by luck.
	h.receiveNamed(w.b, "+15558880001", "Globex Customer", "globex order")
	h.createProduct(w.b.adminToken, map[string]any{"sku": "GLOBEX-1", "title": "Globex Gadget", "price": price(200, "EUR")})
	return w
}

// receiveNamed is receive with the contact's name chosen by the test.
func (h *harness) receiveNamed(tm *team, handle, name, text string) (convID, msgID string) {
	h.t.Helper()
	got, err := h.svc.Receive(context.Background(), tm.channelID, []inbox.Inbound{{
		ExternalID: newClientID(), ContactHandle: handle, ContactName: name, Text: text,
	}})
	if err != nil {
		h.t.Fatalf("receive: %v", err)
	}
	return got[0].Message.ConversationID, got[0].Message.ID
}

// leaks names the markers of tenant A found in body.
func (w *accessWorld) leaks(body []byte) []string {
	var found []string
	for _, m := range w.markers {
		if strings.Contains(string(body), m) {
			found = append(found, m)
		}
	}
	return found
}

// TestRouteAccess walks the route table: every non-public route refuses a
// missing token, every admin route refuses an agent whatever the id,
// every route with an id answers 404 to another tenant's credentials
// without changing anything, every tenant-scoped GET without an id shows
// another tenant none of tenant A's data, and every public route refuses
// a request without the credential it is listed with.
func TestRouteAccess(t *testing.T) {
	w := newAccessWorld(t)
	h, a, b := w.h, w.a, w.b

	seenPublic := map[string]bool{}
	seenSilent := map[string]bool{}
	for _, rt := range h.srv.routes() {
		key := rt.method + " " + rt.path
		path, ok := fill(rt.path, w.ids)
		if !ok {
			t.Errorf("%s: no fixture for its path parameters %v; add tenant A's id for it to newAccessWorld", key, pathParams(rt.path))
			continue
		}
		if rt.access == public {
			seenPublic[key] = true
			cred, ok := publicRoutes[key]
			if !ok {
				t.Errorf("%s is public but not listed in publicRoutes with the credential it checks", key)
				continue
			}
			t.Run(key, func(t *testing.T) { w.checkCredential(t, rt, path, cred) })
			continue
		}
		if _, ok := publicRoutes[key]; ok {
			t.Errorf("%s is listed as public but the table says it needs a session", key)
		}
		body := routeBodies[key]

		t.Run(key, func(t *testing.T) {
			checkErr(t, h.req(rt.method, path, "", body), 401, "unauthorized")
			checkErr(t, h.req(rt.method, path, "not-a-session-token", body), 401, "unauthorized")
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
				return
			}
			if rt.method == http.MethodGet {
				if _, silent := showsNoTenantData[key]; silent {
					seenSilent[key] = true
				}
				w.checkListIsolation(t, rt, key)
			}
		})
	}
	for key := range publicRoutes {
		if !seenPublic[key] {
			t.Errorf("publicRoutes lists %s, which is not a public route in the table", key)
		}
	}
	for key := range showsNoTenantData {
		if !seenSilent[key] {
			t.Errorf("showsNoTenantData lists %s, which is not a tenant-scoped GET route without an id", key)
		}
	}

	// A's data is all still there.
	h.want(h.req("GET", "/api/v1/conversations/"+w.ids["conversations/:id"], a.agentToken, nil), 200)
	h.want(h.req("GET", "/api/v1/catalog/products/"+w.ids["products/:id"], a.agentToken, nil), 200)
	h.want(h.req("GET", "/api/v1/agents/"+a.agentID+"/keys", a.adminToken, nil), 200)
	h.want(h.req("GET", "/api/v1/media/"+w.media.ID, a.agentToken, nil), 200)
}

// checkListIsolation: tenant B's admin (and agent, for member routes)
// gets the route's answer with none of tenant A's markers in it, and A's
// own admin sees some of them, so the check is not vacuous.
func (w *accessWorld) checkListIsolation(t *testing.T, rt route, key string) {
	t.Helper()
	h := w.h
	callers := map[string]string{"B's admin": w.b.adminToken}
	if rt.access == member {
		callers["B's agent"] = w.b.agentToken
	}
	for who, tok := range callers {
		r := h.req(rt.method, rt.path, tok, nil)
		if r.status != 200 {
			t.Errorf("%s as %s: got %s, want 200", key, who, r)
			continue
		}
		if found := w.leaks(r.body); len(found) > 0 {
			t.Errorf("%s as %s shows tenant A's %q", key, who, found)
		}
	}
	own := h.req(rt.method, rt.path, w.a.adminToken, nil)
	_, silent := showsNoTenantData[key]
	switch found := w.leaks(own.body); {
	case own.status != 200:
		t.Errorf("%s as A's admin: got %s, want 200", key, own)
	case len(found) == 0 && !silent:
		t.Errorf("%s shows tenant A none of its own seeded data (%.200s), so the cross-tenant check proves nothing; "+
			"seed A with data this route shows, or list it in showsNoTenantData", key, own.body)
	case len(found) > 0 && silent:
		t.Errorf("%s is listed in showsNoTenantData but shows A's %q", key, found)
	}
}

// checkCredential sends a public route requests without its credential,
// or with a forged one, and wants the contract's refusal, with nothing
// written; where a test can hold the real credential it also checks that
// it is accepted, so the refusals are the check's doing.
func (w *accessWorld) checkCredential(t *testing.T, rt route, path string, cred credential) {
	h, a, b := w.h, w.a, w.b
	key := rt.method + " " + rt.path
	before := h.head(a.adminToken)
	switch cred {
	case credNone:
		for _, tok := range []string{"", a.adminToken} {
			r := h.req(rt.method, path, tok, nil)
			if r.status != 200 {
				t.Errorf("probe answered %s, want 200", r)
			}
			if found := w.leaks(r.body); len(found) > 0 {
				t.Errorf("probe shows tenant data %q", found)
			}
		}

	case credOperator:
		body := map[string]any{"name": "Intruder", "channel_id": a.channelID,
			"messages": []map[string]any{{"external_id": "op-1", "from": "+15550100001", "text": "forged"}}}
		checkErr(t, h.req(rt.method, path, "", body), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, "wrong-operator-token", body), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, accessOperatorToken+"x", body), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, a.adminToken, body), 401, "unauthorized") // a session is not the operator

	case credAccessKey:
		device := map[string]string{"name": "t", "platform": "go"}
		checkErr(t, h.req(rt.method, path, "", map[string]any{"access_key": "obx_not-a-key-0000000000", "device": device}), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, "", map[string]any{"access_key": a.adminToken, "device": device}), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, "", map[string]any{"access_key": a.agentKey[:12], "device": device}), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, a.adminToken, map[string]any{"device": device}), 400, "invalid") // a session is not a key
		h.want(h.req(rt.method, path, "", map[string]any{"access_key": a.agentKey, "device": device}), 201)

	case credSignedMedia:
		other, _ := url.Parse(w.otherMedia.URL)
		mine, _ := url.Parse(w.media.URL)
		for name, q := range map[string]string{
			"no signature":             "",
			"garbage":                  "?exp=abc&sig=zzz",
			"empty signature":          "?exp=" + mine.Query().Get("exp") + "&sig=",
			"expiry moved":             "?exp=" + mine.Query().Get("exp") + "0&sig=" + mine.Query().Get("sig"),
			"another media's sig":      "?" + other.RawQuery,
			"signature without expiry": "?sig=" + mine.Query().Get("sig"),
		} {
			r := h.req(rt.method, path+q, "", nil)
			if r.status != 401 {
				t.Errorf("%s: got %s, want 401", name, r)
				continue
			}
			checkErr(t, r, 401, "unauthorized")
		}
		checkErr(t, h.req(rt.method, path, b.adminToken, nil), 404, "not_found")
		checkErr(t, h.req(rt.method, path+"?"+mine.RawQuery, "not-a-session-token", nil), 401, "unauthorized")
		h.want(h.req(rt.method, path+"?"+mine.RawQuery, "", nil), 200)
		h.want(h.req(rt.method, path, a.agentToken, nil), 200)

	case credHello:
		w.checkHello(t, path)

	case credVerifyToken:
		q := "?hub.mode=subscribe&hub.challenge=777"
		checkErr(t, h.req(rt.method, path+q, "", nil), 403, "forbidden")
		checkErr(t, h.req(rt.method, path+q+"&hub.verify_token=guess", "", nil), 403, "forbidden")
		checkErr(t, h.req(rt.method, path+q+"&hub.verify_token="+w.verifyToken+"x", "", nil), 403, "forbidden")
		r := h.want(h.req(rt.method, path+q+"&hub.verify_token="+w.verifyToken, "", nil), 200)
		if string(r.body) != "777" {
			t.Errorf("right verify token answered %q, want the challenge", r.body)
		}

	case credSignature:
		fx, ok := w.webhooks[key]
		if !ok {
			t.Fatalf("no webhook fixture for %s: add a signed delivery it accepts to newAccessWorld", key)
		}
		name, forged := fx.sign(fx.secret+"-wrong", fx.body)
		_, right := fx.sign(fx.secret, fx.body)
		checkErr(t, h.req(rt.method, path, "", raw(fx.body)), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, "", raw(fx.body), name, forged), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, "", raw(fx.body), name, "sha256=00"), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, a.adminToken, raw(fx.body)), 401, "unauthorized") // a session is no signature
		// Right signature, other body: a signature is bound to its bytes.
		checkErr(t, h.req(rt.method, path, "", raw(append(fx.body[:len(fx.body):len(fx.body)], ' ')), name, right), 401, "unauthorized")
		h.unchanged(a.adminToken, before)
		h.want(h.req(rt.method, path, "", raw(fx.body), name, right), 200)
		return

	case credMetaSigned:
		form := func(sr string) raw { return raw("signed_request=" + url.QueryEscape(sr)) }
		ct := "application/x-www-form-urlencoded"
		payload := map[string]any{"algorithm": "HMAC-SHA256", "issued_at": time.Now().Unix(), "user_id": "16505558888"}
		checkErr(t, h.req(rt.method, path, "", raw(""), "Content-Type", ct), 400, "invalid")
		checkErr(t, h.req(rt.method, path, "", form(signedRequest(w.metaSecret+"-wrong", payload)), "Content-Type", ct), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, "", form("garbage.garbage"), "Content-Type", ct), 401, "unauthorized")
		checkErr(t, h.req(rt.method, path, a.adminToken, form(signedRequest("", payload)), "Content-Type", ct), 401, "unauthorized")
		h.unchanged(a.adminToken, before)
		h.want(h.req(rt.method, path, "", form(signedRequest(w.metaSecret, payload)), "Content-Type", ct), 200)
		return

	case credCode:
		unknown := strings.TrimSuffix(path, w.deletionCode) + "no-such-code"
		checkErr(t, h.req(rt.method, unknown, "", nil, "Accept", "application/json"), 404, "not_found")
		checkErr(t, h.req(rt.method, unknown, a.adminToken, nil, "Accept", "application/json"), 404, "not_found")
		r := h.want(h.req(rt.method, path, "", nil, "Accept", "application/json"), 200)
		if found := w.leaks(r.body); len(found) > 0 {
			t.Errorf("the status shows tenant data %q", found)
		}

	default:
		t.Fatalf("%s: no check for credential %q; add one to checkCredential", key, cred)
	}
	h.unchanged(a.adminToken, before)
}

// checkHello opens the live stream: a socket that says nothing, or says
// hello with a token that is not a session, is closed with 4401 and gets
// no welcome; a plain GET is not upgraded; a real session is welcomed.
func (w *accessWorld) checkHello(t *testing.T, path string) {
	h := w.h
	r := h.req("GET", path, "", nil)
	if r.status != http.StatusUpgradeRequired {
		t.Errorf("plain GET: got %s, want 426", r)
	}
	wsURL := "ws" + strings.TrimPrefix(h.url, "http") + path
	dial := func(t *testing.T) (*websocket.Conn, context.Context) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		c, resp, err := websocket.Dial(ctx, wsURL, nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c, ctx
	}
	wantClosed := func(t *testing.T, name string, c *websocket.Conn, ctx context.Context) {
		_, msg, err := c.Read(ctx)
		if err == nil {
			t.Errorf("%s: got frame %s, want close 4401", name, msg)
			return
		}
		if code := websocket.CloseStatus(err); code != 4401 {
			t.Errorf("%s: closed with %v (%d), want 4401", name, err, code)
		}
	}
	hello := func(tok string) []byte {
		b, _ := json.Marshal(map[string]any{"type": "hello", "token": tok, "since": 0})
		return b
	}
	c, ctx := dial(t)
	wantClosed(t, "no hello", c, ctx)
	for name, tok := range map[string]string{
		"empty token": "", "bogus token": "not-a-session-token", "access key as token": w.a.agentKey, "operator token": accessOperatorToken,
	} {
		c, ctx := dial(t)
		if err := c.Write(ctx, websocket.MessageText, hello(tok)); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: write hello: %v", name, err)
			continue
		}
		wantClosed(t, name, c, ctx)
	}
	c, ctx = dial(t)
	if err := c.Write(ctx, websocket.MessageText, hello(w.a.agentToken)); err != nil {
		t.Fatalf("write hello: %v", err)
	}
	_, msg, err := c.Read(ctx)
	var f struct {
		Type string `json:"type"`
	}
	if err != nil || json.Unmarshal(msg, &f) != nil || f.Type != "welcome" {
		t.Errorf("a real session's hello: got %s %v, want welcome", msg, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// TestOperatorRoutesOffWithoutToken: with no operator token configured,
// every route listed as taking it does not exist (404), whatever is sent.
func TestOperatorRoutesOffWithoutToken(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	n := 0
	for _, rt := range h.srv.routes() {
		key := rt.method + " " + rt.path
		if publicRoutes[key] != credOperator {
			continue
		}
		n++
		for _, tok := range []string{"", "anything", tm.adminToken} {
			checkErr(t, h.req(rt.method, rt.path, tok, map[string]any{"name": "X"}), 404, "not_found")
		}
	}
	if n == 0 {
		t.Fatal("no route takes the operator token")
	}
}
