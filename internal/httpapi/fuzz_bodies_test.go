package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/channel/sms"
	"github.com/onebox/onebox/internal/channel/tiktok"
	"github.com/onebox/onebox/internal/channel/whatsapp"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/media"
)

// bodyRoute is one route that reads a request body, as the fuzzer calls it.
type bodyRoute struct {
	key          string // the route table's "METHOD template"
	method, path string // path with the world's ids (and a query, for some calls)
	caller       string // "admin", "agent", "operator" or "" (no token)
	wrap         string // how the fuzzed bytes are sent; see encode
	seeds        []string
}

// bodyCall is one way the fuzzer calls a route: the query it adds, who
// calls, how the fuzzed bytes are wrapped, and seeds. The first seed is a
// body the route accepts (TestFuzzSeedsAreAccepted).
type bodyCall struct {
	query, caller, wrap string
	seeds               []string
}

// readsNoBody are the routes of the table, other than GETs, that read no
// request body, each with why. Every other route must have calls in
// bodyCalls, so a new route that reads a body is fuzzed or fails
// TestFuzzBodiesCoverTheRouteTable, which also checks these really
// ignore their body.
var readsNoBody = map[string]string{
	"DELETE /api/v1/session":                 "signs out the calling session",
	"DELETE /api/v1/agents/:id":              "the agent is in the path",
	"DELETE /api/v1/agents/:id/keys/:key_id": "the key is in the path",
	"DELETE /api/v1/channels/:id":            "the channel is in the path",
	"DELETE /api/v1/catalog/products/:id":    "the product is in the path",
	"DELETE /api/v1/contacts/:id":            "the contact is in the path",
}

// fuzzWorld is one real server (bbolt in a temp dir, every optional part
// configured, real provider webhooks) with a tenant in it, driven through
// the Fiber app in memory.
type fuzzWorld struct {
	srv          *Server
	adminToken   string
	agentToken   string
	routes       []bodyRoute
	operatorAuth string
	// secrets sign the fuzzed bytes for the webhook routes, so the
	// provider's parser and the store are reached, not only the check.
	secrets map[string]string // by wrap
	ids     map[string]string // by the segment before a path parameter
	// missing are body-reading routes of the table with no calls, stale
	// are calls for routes the table does not have.
	missing, stale []string
}

const fuzzOperatorToken = "fuzz-operator-token-0123456789abcdef"

func newFuzzWorld(tb testing.TB) *fuzzWorld {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	store, err := bolt.Open(filepath.Join(tb.TempDir(), "onebox.db"), bolt.Options{Logger: log})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { store.Close() })
	svc, err := inbox.NewService(inbox.Config{Store: store, PublicURL: "http://127.0.0.1:1", Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	ms, err := media.New(context.Background(), media.Config{Dir: filepath.Join(tb.TempDir(), "media"), Service: svc, MaxSize: 1 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	svc.SetMediaURLs(ms.SignURLs)
	srv := New(Config{Service: svc, Logger: log, MaxBody: 64 << 10, OperatorToken: fuzzOperatorToken,
		Media: ms, MaxUpload: 1 << 20,
		Webhooks: map[string]channel.Webhook{
			inbox.ChannelWhatsApp: whatsapp.NewWebhook(whatsapp.WebhookConfig{Inbox: svc, Logger: log}),
			inbox.ChannelTikTok:   tiktok.NewWebhook(tiktok.WebhookConfig{Inbox: svc, Logger: log}),
			inbox.ChannelSMS:      sms.NewWebhook(svc),
		},
		Limits: Limits{SignIn: Rate{Per: -1}, Session: Rate{Per: -1}, Webhook: Rate{Per: -1}}})
	w := &fuzzWorld{srv: srv, operatorAuth: fuzzOperatorToken, secrets: map[string]string{
		"whatsapp": "fuzz-wa-secret", "tiktok": "fuzz-tt-secret", "sms": "fuzz-sms-secret", "meta": "fuzz-wa-secret",
	}}

	_, _, _, key, err := svc.CreateTenant(context.Background(), "Fuzz")
	if err != nil {
		tb.Fatal(err)
	}
	var sess struct {
		Token string `json:"token"`
	}
	w.mustJSON(tb, "POST", "/api/v1/session", "", map[string]any{"access_key": key, "device": map[string]string{"name": "f", "platform": "go"}}, 201, &sess)
	w.adminToken = sess.Token
	var agent struct {
		Agent     struct{ ID string } `json:"agent"`
		Key       struct{ ID string } `json:"key"`
		AccessKey string              `json:"access_key"`
	}
	w.mustJSON(tb, "POST", "/api/v1/agents", w.adminToken, map[string]any{"name": "Ada", "email": "ada@fuzz.example", "role": "agent"}, 201, &agent)
	w.mustJSON(tb, "POST", "/api/v1/session", "", map[string]any{"access_key": agent.AccessKey, "device": map[string]string{"name": "f", "platform": "go"}}, 201, &sess)
	w.agentToken = sess.Token
	channelOf := func(typ string, cfg map[string]any) string {
		var ch struct {
			Channel struct{ ID string } `json:"channel"`
		}
		w.mustJSON(tb, "POST", "/api/v1/channels", w.adminToken, map[string]any{"type": typ, "name": typ, "config": cfg}, 201, &ch)
		return ch.Channel.ID
	}
	demo := channelOf("demo", nil)
	wa := channelOf("whatsapp", map[string]any{"phone_number_id": "106540352242922", "access_token": "a", "app_secret": w.secrets["whatsapp"], "verify_token": "v"})
	tt := channelOf("tiktok", map[string]any{"business_id": "7374937459228475397", "access_token": "a", "client_secret": w.secrets["tiktok"]})
	sm := channelOf("sms", map[string]any{"send_url": "http://127.0.0.1:9/send", "auth_token": "t", "webhook_secret": w.secrets["sms"]})
	got, err := svc.Receive(context.Background(), demo, []inbox.Inbound{{
		ExternalID: uuid.NewString(), ContactHandle: "+15550001", ContactName: "Cy", Text: "hello",
	}})
	if err != nil {
		tb.Fatal(err)
	}
	conv, msg := got[0].Message.ConversationID, got[0].Message.ID
	var prod struct {
		Product struct{ ID string } `json:"product"`
	}
	w.mustJSON(tb, "POST", "/api/v1/catalog/products", w.adminToken, map[string]any{"sku": "SKU-1", "title": "Mug", "price": map[string]any{"amount_minor": 1250, "currency": "EUR"}}, 201, &prod)
	var contact struct {
		Conversation struct {
			Contact struct{ ID string } `json:"contact"`
		} `json:"conversation"`
	}
	w.mustJSON(tb, "GET", "/api/v1/conversations/"+conv, w.agentToken, nil, 200, &contact)

	w.ids = map[string]string{
		"agents/:id": agent.Agent.ID, "keys/:key_id": agent.Key.ID, "channels/:id": demo,
		"conversations/:id": conv, "messages/:id": msg, "products/:id": prod.Product.ID,
		"media/:id": "none", "contacts/:id": contact.Conversation.Contact.ID,
		"whatsapp/:channel_id": wa, "tiktok/:channel_id": tt, "sms/:channel_id": sm, "meta/:channel_id": wa,
		"deletion/:code": "none",
	}
	calls := bodyCalls(demo, agent.Agent.ID, msg, prod.Product.ID)
	seen := map[string]bool{}
	for _, rt := range srv.routes() {
		key := rt.method + " " + rt.path
		if rt.method == fiber.MethodGet || seen[key] {
			continue
		}
		seen[key] = true
		cs, ok := calls[key]
		if !ok {
			if _, none := readsNoBody[key]; !none {
				w.missing = append(w.missing, key)
			}
			continue
		}
		path, ok := fill(rt.path, w.ids)
		if !ok {
			tb.Fatalf("%s: no id for %v in the fuzz world", key, pathParams(rt.path))
		}
		for _, c := range cs {
			w.routes = append(w.routes, bodyRoute{key: key, method: rt.method, path: path + c.query, caller: c.caller, wrap: c.wrap, seeds: c.seeds})
		}
	}
	for key := range calls {
		if !seen[key] {
			w.stale = append(w.stale, key)
		}
	}
	sort.Strings(w.stale)
	return w
}

// bodyCalls are the fuzzer's calls of every route that reads a body, by
// route key, given the world's ids.
func bodyCalls(channelID, agentID, msgID, productID string) map[string][]bodyCall {
	wa := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Customer"},"wa_id":"16505550001"}],"messages":[{"from":"16505550001","id":"wamid.fuzz-1","timestamp":"1749416383","text":{"body":"Hello"},"type":"text"}]},"field":"messages"}]}]}`
	waStatus := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.x","status":"read","timestamp":"1749416383","recipient_id":"16505550001"}]},"field":"messages"}]}]}`
	tt := `{"client_key":"k","event":"im_receive_msg","create_time":1749416383,"user_openid":"7374937459228475397","content":"{\"conversation_id\":\"c1\",\"message_id\":\"fuzz-1\",\"timestamp\":1749416383123,\"type\":\"text\",\"from\":\"mia\",\"from_user\":{\"id\":\"7290014565934532613\",\"role\":\"personal_account\"},\"to\":\"shop\",\"to_user\":{\"id\":\"7374937459228475397\",\"role\":\"business_account\"},\"text\":{\"body\":\"In stock?\"}}"}`
	return map[string][]bodyCall{
		"POST /api/v1/tenants": {{"", "operator", "json", []string{`{"name":"Acme"}`, `{"name":""}`, `{"name":5}`}}},
		"POST /api/v1/operator/inbound": {{"", "operator", "json", []string{
			`{"channel_id":"` + channelID + `","messages":[{"external_id":"x1","from":"+15550002","name":"Di","text":"hi"}]}`,
			`{"channel_id":"nope","messages":[]}`, `{"channel_id":"` + channelID + `","messages":[{"from":""}]}`}}},
		"POST /api/v1/session":         {{"", "", "json", []string{`{"access_key":"obx_nope","device":{"name":"a","platform":"ios"}}`, `{"access_key":""}`, `{"device":"x"}`}}},
		"POST /api/v1/agents":          {{"", "admin", "json", []string{`{"name":"Bo","email":"bo@x.example","role":"admin"}`, `{"name":"","email":"x","role":"boss"}`}}},
		"POST /api/v1/agents/:id/keys": {{"", "admin", "json", []string{`{}`, `{"name":"laptop"}`}}},
		"POST /api/v1/channels": {{"", "admin", "json", []string{
			`{"type":"demo","name":"D2"}`, `{"type":"sms","name":"S","config":{"send_url":"https://sms.example/send","auth_token":"t","webhook_secret":"s"}}`,
			`{"type":"whatsapp","name":"W","config":{"phone_number_id":"1","access_token":"a","app_secret":"s","verify_token":"v"}}`,
			`{"type":"demo","config":{"a":1}}`}}},
		"PATCH /api/v1/conversations/:id": {{"", "agent", "json", []string{
			`{"status":"resolved"}`, `{"assignee_id":"` + agentID + `"}`, `{"labels":["vip"]}`,
			`{"status":"snoozed","snoozed_until":"2099-01-01T00:00:00Z"}`, `{"status":7}`}}},
		"POST /api/v1/conversations/:id/read": {{"", "agent", "json", []string{`{}`, `{"message_id":"` + msgID + `"}`}}},
		"POST /api/v1/conversations/:id/messages": {{"", "agent", "json", []string{
			`{"client_id":"` + uuid.NewString() + `","text":"hello","private":true}`, `{"client_id":"` + uuid.NewString() + `","text":"hi"}`,
			`{"client_id":"` + uuid.NewString() + `","product_id":"` + productID + `"}`, `{"text":""}`, `{"client_id":"c4","media_id":"nope"}`}}},
		"POST /api/v1/messages/:id/retry": {{"", "agent", "json", []string{`{}`}}},
		"POST /api/v1/catalog/products": {{"", "admin", "json", []string{
			`{"sku":"SKU-2","title":"Cup","price":{"amount_minor":300,"currency":"USD"},"available":true,"description":"d"}`,
			`{"sku":"","title":"x","price":{"amount_minor":-1,"currency":"EUR"}}`, `{"sku":"S3","title":"T","price":{"amount_minor":1.5,"currency":"XXX"}}`}}},
		"PATCH /api/v1/catalog/products/:id": {{"", "admin", "json", []string{
			`{"title":"Big mug"}`, `{"price":{"amount_minor":1300,"currency":"EUR"},"available":false}`, `{"image_media_id":null}`, `{"sku":null}`}}},
		"POST /api/v1/catalog/import": {
			// The last seed once made the CSV reader's error path panic.
			{"", "admin", "csv", []string{"sku,title,price,currency\nSKU-9,Plate,400,EUR\n", "sku,title\n\"unterminated\n", "\ufeffsku;title\nA;B\n", "sku,title,priCe,CurrenCy\nA0\""}},
			{"?dry_run=true", "admin", "multipart", []string{"sku,title,price,currency\nSKU-8,Bowl,200,EUR\n"}},
		},
		"POST /api/v1/media": {{"", "agent", "multipart", []string{"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "GIF89a", "plain text"}}},
		"POST /api/v1/push/webpush": {{"", "agent", "json", []string{
			`{"endpoint":"https://fcm.googleapis.com/fcm/send/abc","keys":{"p256dh":"BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U","auth":"tBHItJI5svbpez7KI4CCXg"},"expirationTime":null}`,
			`{"endpoint":"http://127.0.0.1/x","keys":{}}`}}},
		"DELETE /api/v1/push/webpush":    {{"", "agent", "json", []string{`{"endpoint":"https://fcm.googleapis.com/fcm/send/abc"}`, `{"endpoint":""}`}}},
		"POST /api/v1/push/fcm":          {{"", "agent", "json", []string{`{"token":"fcm-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:APA91b"}`, `{"token":""}`}}},
		"DELETE /api/v1/push/fcm":        {{"", "agent", "json", []string{`{"token":"fcm-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:APA91b"}`}}},
		"PUT /api/v1/settings/push":      {{"", "admin", "json", []string{`{"private":true}`, `{"private":"yes"}`, `{}`}}},
		"PUT /api/v1/settings/retention": {{"", "admin", "json", []string{`{"messages_days":30}`, `{"messages_days":-1}`, `{"messages_days":0}`, `{}`}}},
		// The provider routes get the fuzzed bytes correctly signed, so
		// the fuzzer gets past the signature into the parsers and store.
		"POST /webhooks/whatsapp/:channel_id": {{"", "", "whatsapp", []string{wa, waStatus, `{"object":"page"}`}}},
		"POST /webhooks/tiktok/:channel_id":   {{"", "", "tiktok", []string{tt, `{"event":"im_mark_read_msg"}`}}},
		"POST /webhooks/sms/:channel_id": {{"", "", "sms", []string{
			`{"from":"+15550107777","to":"+15550100000","text":"hi","id":"gw-fuzz-1","timestamp":"2026-01-02T03:04:05Z"}`,
			`{"id":"gw-fuzz-1","status":"delivered"}`, `{"from":"+1","text":"x","timestamp":1749416383}`}}},
		// The fuzzed bytes are the signed request's payload, signed with
		// the channel's app secret.
		"POST /webhooks/meta/:channel_id/data-deletion": {{"", "", "meta", []string{
			`{"algorithm":"HMAC-SHA256","issued_at":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"user_id":"16505550001"}`,
			`{"algorithm":"HMAC-SHA1","issued_at":1,"user_id":""}`}}},
	}
}

// do sends one request through the app (fasthttp's own connection
// handling included, no network).
func (w *fuzzWorld) do(method, path, token, contentType string, body []byte, headers ...string) (int, http.Header, []byte, error) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := w.srv.app.Test(req, -1)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func (w *fuzzWorld) mustJSON(tb testing.TB, method, path, token string, body any, status int, out any) {
	tb.Helper()
	b, _ := json.Marshal(body)
	st, _, resp, err := w.do(method, path, token, "application/json", b)
	if err != nil || st != status {
		tb.Fatalf("%s %s: %d %s %v, want %d", method, path, st, resp, err, status)
	}
	if err := json.Unmarshal(resp, out); err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
}

// head is the tenant's event log head: a refused call must not move it.
func (w *fuzzWorld) head(tb testing.TB) uint64 {
	var ev struct {
		Head uint64 `json:"head"`
	}
	st, _, b, err := w.do("GET", "/api/v1/events?since=0&limit=1", w.adminToken, "", nil)
	if err != nil || st != 200 || json.Unmarshal(b, &ev) != nil {
		tb.Fatalf("events: %d %s %v", st, b, err)
	}
	return ev.Head
}

// encode turns the fuzzed bytes into the request the route takes, with
// any headers it needs (a provider's signature).
func (w *fuzzWorld) encode(r bodyRoute, data []byte) (contentType string, body []byte, headers []string) {
	secret := w.secrets[r.wrap]
	switch r.wrap {
	case "whatsapp":
		return "application/json", data, []string{whatsapp.SignatureHeader, whatsapp.Sign(secret, data)}
	case "tiktok":
		return "application/json", data, []string{tiktok.SignatureHeader, tiktok.Sign(secret, data, time.Now())}
	case "sms":
		return "application/json", data, []string{sms.SignatureHeader, sms.Sign(secret, data)}
	case "meta":
		return "application/x-www-form-urlencoded", []byte("signed_request=" + url.QueryEscape(signedRequestOf(secret, data))), nil
	}
	ct, body := r.encode(data)
	return ct, body, nil
}

// signedRequestOf signs raw payload bytes as Meta does.
func signedRequestOf(secret string, payload []byte) string {
	enc := base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(enc))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) + "." + enc
}

// encode turns the fuzzed bytes into the body of an API route.
func (r bodyRoute) encode(data []byte) (contentType string, body []byte) {
	switch r.wrap {
	case "csv":
		return "text/csv", data
	case "multipart":
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		name := "upload.bin"
		if i := bytes.IndexByte(data, '\n'); i > 0 && i < 64 && bytes.HasPrefix(data, []byte("name=")) {
			name, data = string(data[5:i]), data[i+1:] // the fuzzer may choose the file name too
		}
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(data)
		mw.Close()
		return mw.FormDataContentType(), buf.Bytes()
	}
	return "application/json", data
}

// FuzzAPIBodies sends arbitrary bodies to every route that reads one,
// through the real handlers, service and store. Whatever comes in: no
// panic and no 5xx; a refusal is a 4xx in the contract's error shape and
// leaves the tenant's event log where it was; an acceptance answers JSON.
func FuzzAPIBodies(f *testing.F) {
	w := newFuzzWorld(f)
	if len(w.missing) > 0 || len(w.stale) > 0 {
		f.Fatalf("routes reading a body without fuzz calls %v, calls for routes not in the table %v", w.missing, w.stale)
	}
	for i, r := range w.routes {
		for _, s := range r.seeds {
			f.Add(uint8(i), []byte(s))
		}
		f.Add(uint8(i), []byte(`[]`))
		f.Add(uint8(i), []byte(`{"a":`))
		f.Add(uint8(i), []byte(`null`))
	}
	f.Fuzz(func(t *testing.T, pick uint8, data []byte) {
		r := w.routes[int(pick)%len(w.routes)]
		token := map[string]string{"admin": w.adminToken, "agent": w.agentToken, "operator": w.operatorAuth}[r.caller]
		ct, body, headers := w.encode(r, data)
		before := w.head(t)
		st, hdr, resp, err := w.do(r.method, r.path, token, ct, body, headers...)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		what := fmt.Sprintf("%s %s with %q", r.method, r.path, truncate(data, 200))
		if st >= 500 {
			t.Fatalf("%s: %d %s", what, st, resp)
		}
		if st >= 400 {
			var e struct {
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || json.Unmarshal(resp, &e) != nil ||
				e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s: %d answered %q (%s), not the error shape", what, st, resp, hdr.Get("Content-Type"))
			}
			if after := w.head(t); after != before {
				t.Fatalf("%s: refused with %d %s but the event log moved from %d to %d", what, st, resp, before, after)
			}
			return
		}
		if len(resp) > 0 && !json.Valid(resp) {
			t.Fatalf("%s: %d answered %q, not JSON", what, st, resp)
		}
	})
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// TestFuzzSeedsAreAccepted keeps the corpus honest: the first seed of each
// route is a body the route accepts, so the fuzzer starts from the paths
// that write, not only from the ones that refuse.
func TestFuzzSeedsAreAccepted(t *testing.T) {
	w := newFuzzWorld(t)
	// No valid access key or failed message can be written down in advance.
	refused := map[string]bool{"/api/v1/session": true, "/retry": true}
	for _, r := range w.routes {
		skip := false
		for k := range refused {
			skip = skip || strings.HasSuffix(r.path, k)
		}
		if skip {
			continue
		}
		token := map[string]string{"admin": w.adminToken, "agent": w.agentToken, "operator": w.operatorAuth}[r.caller]
		ct, body, headers := w.encode(r, []byte(r.seeds[0]))
		st, _, resp, err := w.do(r.method, r.path, token, ct, body, headers...)
		if err != nil || st >= 300 {
			t.Errorf("%s %s with its first seed: %d %s %v", r.method, r.path, st, resp, err)
		}
	}
}

// TestFuzzBodiesCoverTheRouteTable: every route of the table other than
// a GET is fuzzed by FuzzAPIBodies with seeds, or is listed in
// readsNoBody, and those listed really act without reading a body: each
// does its work (2xx) when sent malformed JSON, which a route decoding
// its body would refuse with 400.
func TestFuzzBodiesCoverTheRouteTable(t *testing.T) {
	w := newFuzzWorld(t)
	for _, key := range w.missing {
		t.Errorf("%s reads a body but FuzzAPIBodies has no calls for it: add seeds to bodyCalls, or list it in readsNoBody if it reads none", key)
	}
	for _, key := range w.stale {
		t.Errorf("bodyCalls has calls for %s, which is not in the route table", key)
	}
	for _, r := range w.routes {
		if len(r.seeds) == 0 {
			t.Errorf("%s %s has no seeds", r.method, r.path)
		}
	}
	routes := map[string]route{}
	for _, rt := range w.srv.routes() {
		routes[rt.method+" "+rt.path] = rt
	}
	for key := range readsNoBody {
		rt, ok := routes[key]
		if !ok || rt.method == fiber.MethodGet {
			t.Errorf("readsNoBody lists %s, which is not a route of the table that could take a body", key)
			continue
		}
		fresh := newFuzzWorld(t) // each route destroys something of its world
		path, _ := fill(rt.path, fresh.ids)
		st, _, resp, err := fresh.do(rt.method, path, fresh.adminToken, "application/json", []byte(`{"a":`))
		if err != nil || st < 200 || st > 299 {
			t.Errorf("%s, listed as reading no body, answered %d %s %v to a malformed one", key, st, resp, err)
		}
	}
}
