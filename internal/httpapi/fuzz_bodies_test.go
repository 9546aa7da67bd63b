package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/media"
)

// bodyRoute is one route that reads a request body, as the fuzzer calls it.
type bodyRoute struct {
	method, path string
	caller       string // "admin", "agent", "operator" or "" (no token)
	wrap         string // how the fuzzed bytes are sent: "json", "csv", "multipart"
	seeds        []string
}

// fuzzWorld is one real server (bbolt in a temp dir, every optional part
// configured) with a tenant in it, driven through the Fiber app in memory.
type fuzzWorld struct {
	srv          *Server
	adminToken   string
	agentToken   string
	routes       []bodyRoute
	operatorAuth string
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
		Limits: Limits{SignIn: Rate{Per: -1}, Session: Rate{Per: -1}, Webhook: Rate{Per: -1}}})
	w := &fuzzWorld{srv: srv, operatorAuth: fuzzOperatorToken}

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
		AccessKey string              `json:"access_key"`
	}
	w.mustJSON(tb, "POST", "/api/v1/agents", w.adminToken, map[string]any{"name": "Ada", "email": "ada@fuzz.example", "role": "agent"}, 201, &agent)
	w.mustJSON(tb, "POST", "/api/v1/session", "", map[string]any{"access_key": agent.AccessKey, "device": map[string]string{"name": "f", "platform": "go"}}, 201, &sess)
	w.agentToken = sess.Token
	var ch struct {
		Channel struct{ ID string } `json:"channel"`
	}
	w.mustJSON(tb, "POST", "/api/v1/channels", w.adminToken, map[string]any{"type": "demo", "name": "Demo"}, 201, &ch)
	got, err := svc.Receive(context.Background(), ch.Channel.ID, []inbox.Inbound{{
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

	w.routes = []bodyRoute{
		{"POST", "/api/v1/tenants", "operator", "json", []string{`{"name":"Acme"}`, `{"name":""}`, `{"name":5}`}},
		{"POST", "/api/v1/operator/inbound", "operator", "json", []string{
			`{"channel_id":"` + ch.Channel.ID + `","messages":[{"external_id":"x1","from":"+15550002","name":"Di","text":"hi"}]}`,
			`{"channel_id":"nope","messages":[]}`, `{"channel_id":"` + ch.Channel.ID + `","messages":[{"from":""}]}`}},
		{"POST", "/api/v1/session", "", "json", []string{`{"access_key":"obx_nope","device":{"name":"a","platform":"ios"}}`, `{"access_key":""}`, `{"device":"x"}`}},
		{"POST", "/api/v1/agents", "admin", "json", []string{`{"name":"Bo","email":"bo@x.example","role":"admin"}`, `{"name":"","email":"x","role":"boss"}`}},
		{"POST", "/api/v1/agents/" + agent.Agent.ID + "/keys", "admin", "json", []string{`{}`, `{"name":"laptop"}`}},
		{"POST", "/api/v1/channels", "admin", "json", []string{
			`{"type":"demo","name":"D2"}`, `{"type":"sms","name":"S","config":{"send_url":"https://sms.example/send","auth_token":"t","webhook_secret":"s"}}`,
			`{"type":"whatsapp","name":"W","config":{"phone_number_id":"1","access_token":"a","app_secret":"s","verify_token":"v"}}`,
			`{"type":"demo","config":{"a":1}}`}},
		{"PATCH", "/api/v1/conversations/" + conv, "agent", "json", []string{
			`{"status":"resolved"}`, `{"assignee_id":"` + agent.Agent.ID + `"}`, `{"labels":["vip"]}`,
			`{"status":"snoozed","snoozed_until":"2099-01-01T00:00:00Z"}`, `{"status":7}`}},
		{"POST", "/api/v1/conversations/" + conv + "/read", "agent", "json", []string{`{}`, `{"message_id":"` + msg + `"}`}},
		{"POST", "/api/v1/conversations/" + conv + "/messages", "agent", "json", []string{
			`{"client_id":"` + uuid.NewString() + `","text":"hello","private":true}`, `{"client_id":"` + uuid.NewString() + `","text":"hi"}`,
			`{"client_id":"` + uuid.NewString() + `","product_id":"` + prod.Product.ID + `"}`, `{"text":""}`, `{"client_id":"c4","media_id":"nope"}`}},
		{"POST", "/api/v1/messages/" + msg + "/retry", "agent", "json", []string{`{}`}},
		{"POST", "/api/v1/catalog/products", "admin", "json", []string{
			`{"sku":"SKU-2","title":"Cup","price":{"amount_minor":300,"currency":"USD"},"available":true,"description":"d"}`,
			`{"sku":"","title":"x","price":{"amount_minor":-1,"currency":"EUR"}}`, `{"sku":"S3","title":"T","price":{"amount_minor":1.5,"currency":"XXX"}}`}},
		{"PATCH", "/api/v1/catalog/products/" + prod.Product.ID, "admin", "json", []string{
			`{"title":"Big mug"}`, `{"price":{"amount_minor":1300,"currency":"EUR"},"available":false}`, `{"image_media_id":null}`, `{"sku":null}`}},
		{"POST", "/api/v1/catalog/import", "admin", "csv", []string{
			"sku,title,price,currency\nSKU-9,Plate,400,EUR\n", "sku,title\n\"unterminated\n", "\ufeffsku;title\nA;B\n"}},
		{"POST", "/api/v1/catalog/import?dry_run=true", "admin", "multipart", []string{"sku,title,price,currency\nSKU-8,Bowl,200,EUR\n"}},
		{"POST", "/api/v1/media", "agent", "multipart", []string{"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "GIF89a", "plain text"}},
		{"POST", "/api/v1/push/webpush", "agent", "json", []string{
			`{"endpoint":"https://fcm.googleapis.com/fcm/send/abc","keys":{"p256dh":"BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U","auth":"tBHItJI5svbpez7KI4CCXg"},"expirationTime":null}`,
			`{"endpoint":"http://127.0.0.1/x","keys":{}}`}},
		{"DELETE", "/api/v1/push/webpush", "agent", "json", []string{`{"endpoint":"https://fcm.googleapis.com/fcm/send/abc"}`, `{"endpoint":""}`}},
		{"POST", "/api/v1/push/fcm", "agent", "json", []string{`{"token":"fcm-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:APA91b"}`, `{"token":""}`}},
		{"DELETE", "/api/v1/push/fcm", "agent", "json", []string{`{"token":"fcm-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:APA91b"}`}},
		{"PUT", "/api/v1/settings/push", "admin", "json", []string{`{"private":true}`, `{"private":"yes"}`, `{}`}},
		{"PUT", "/api/v1/settings/retention", "admin", "json", []string{`{"messages_days":30}`, `{"messages_days":-1}`, `{"messages_days":0}`, `{}`}},
	}
	return w
}

// do sends one request through the app (fasthttp's own connection
// handling included, no network).
func (w *fuzzWorld) do(method, path, token, contentType string, body []byte) (int, http.Header, []byte, error) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
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

// encode turns the fuzzed bytes into the request the route takes.
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
		ct, body := r.encode(data)
		before := w.head(t)
		st, hdr, resp, err := w.do(r.method, r.path, token, ct, body)
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
		ct, body := r.encode([]byte(r.seeds[0]))
		st, _, resp, err := w.do(r.method, r.path, token, ct, body)
		if err != nil || st >= 300 {
			t.Errorf("%s %s with its first seed: %d %s %v", r.method, r.path, st, resp, err)
		}
	}
}
