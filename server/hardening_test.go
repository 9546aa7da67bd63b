package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/channel/sms"
)

// metric reads one series from the server's /metrics; -1 if absent.
func (p *proc) metric(series string) float64 {
	p.t.Helper()
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// waitMetric waits until series reads want: a socket's close counts once
// its server side has finished, which may be just after the client saw it.
func (p *proc) waitMetric(series string, want float64) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := p.metric(series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s = %v, want %v", series, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func closeCode(ctx context.Context, c *websocket.Conn) websocket.StatusCode {
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// TestLimitHitsOnMetrics trips the socket limits and the body limit of a
// real server and reads each counter on /metrics, next to the process
// gauges an operator watches for leaks.
func TestLimitHitsOnMetrics(t *testing.T) {
	t.Setenv("ONEBOX_MAX_SOCKETS_PER_AGENT", "1")
	t.Setenv("ONEBOX_MAX_BODY", "4096")
	p := start(t, t.TempDir())
	for _, g := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_heap_live_bytes", "process_resident_memory_bytes"} {
		if v := p.metric(g); v <= 0 {
			t.Errorf("%s = %v, want a positive value", g, v)
		}
	}
	for _, s := range []string{"onebox_websocket_agent_limit_closes_total", "onebox_websocket_flood_closes_total",
		"onebox_websocket_too_big_closes_total", `onebox_limit_hits_total{limit="body_size"}`} {
		if v := p.metric(s); v != 0 {
			t.Fatalf("%s = %v before any hit, want 0", s, v)
		}
	}
	tm := p.newTeam("Acme")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// 1013: the agent's second socket.
	first := p.dial(ctx, tm.token, 0)
	if f := first.next(ctx); f.Type != "welcome" {
		t.Fatalf("first frame %s, want welcome", f.raw)
	}
	second := p.dial(ctx, tm.token, 0)
	if code := closeCode(ctx, second.conn); code != websocket.StatusTryAgainLater {
		t.Fatalf("second socket of one agent: close %d, want 1013", code)
	}
	p.waitMetric("onebox_websocket_agent_limit_closes_total", 1)

	// 1008: the first socket floods.
	for range 500 {
		if first.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"typing","conversation_id":"x"}`)) != nil {
			break
		}
	}
	if code := closeCode(ctx, first.conn); code != websocket.StatusPolicyViolation {
		t.Fatalf("flood: close %d, want 1008", code)
	}
	p.waitMetric("onebox_websocket_flood_closes_total", 1)

	// 1009: a frame over the 64 KiB limit, on a new socket (the agent's
	// place is free again once the flood's socket is gone).
	var third *wsClient
	deadline := time.Now().Add(10 * time.Second)
	for {
		third = p.dial(ctx, tm.token, 0)
		_, b, err := third.conn.Read(ctx)
		if err == nil && bytes.Contains(b, []byte(`"welcome"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no welcome for a socket after the flood's closed: %s %v", b, err)
		}
	}
	_ = third.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"typing","conversation_id":"`+strings.Repeat("x", 100<<10)+`"}`))
	if code := closeCode(ctx, third.conn); code != websocket.StatusMessageTooBig {
		t.Fatalf("big frame: close %d, want 1009", code)
	}
	p.waitMetric("onebox_websocket_too_big_closes_total", 1)

	// 413: a body over ONEBOX_MAX_BODY.
	if st := p.call("POST", "/api/v1/agents", tm.token, map[string]any{"name": strings.Repeat("x", 8<<10)}, nil); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d, want 413", st)
	}
	p.waitMetric(`onebox_limit_hits_total{limit="body_size"}`, 1)
	// Each counted only its own.
	p.waitMetric("onebox_websocket_agent_limit_closes_total", 1)
	p.waitMetric("onebox_websocket_flood_closes_total", 1)
}

// TestTrustedProxiesFromEnvironment: with ONEBOX_TRUSTED_PROXIES naming the
// loopback address, the sign-in limit is per forwarded client.
func TestTrustedProxiesFromEnvironment(t *testing.T) {
	t.Setenv("ONEBOX_RATE_SIGNIN", "1/h:1")
	t.Setenv("ONEBOX_TRUSTED_PROXIES", "127.0.0.1")
	p := start(t, t.TempDir())
	guesses := 0
	signIn := func(client string) int {
		guesses++ // a new key prefix each time: only the address limit applies
		req, _ := http.NewRequest("POST", p.url+"/api/v1/session", strings.NewReader(`{"access_key":"obx_`+strconv.Itoa(guesses)+`_wrongwrongwrong"}`))
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		client string
		want   int
	}{{"203.0.113.1", 401}, {"203.0.113.2", 401}, {"203.0.113.1", 429}} {
		if got := signIn(c.client); got != c.want {
			t.Fatalf("sign-in from %s through the proxy: %d, want %d", c.client, got, c.want)
		}
	}
}

func TestTrustedProxiesMalformed(t *testing.T) {
	t.Setenv("ONEBOX_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal")
	_, err := parseServe(nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ONEBOX_TRUSTED_PROXIES") || !strings.Contains(err.Error(), "proxy.internal") {
		t.Fatalf("parseServe = %v, want an error naming the variable and the entry", err)
	}
}

// TestNoSecretsInServerLogs runs the real binary at debug level through
// what touches credentials: a tenant's first key, sign-ins good and bad,
// channels of every provider type, webhooks signed and forged, and
// replies the providers accept or refuse. Its whole stderr must hold none
// of the access key, the session token, the operator token or any
// channel secret.
func TestNoSecretsInServerLogs(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/sms") {
			io.WriteString(w, `{"id":"gw-1"}`)
			return
		}
		// WhatsApp refuses the token, as it does one that expired.
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190}}`)
	}))
	defer provider.Close()

	p := start(t, t.TempDir(), "--log-level", "debug")
	secret := func(what string) string { return what + "-" + uuid.NewString() }
	wa := map[string]string{"phone_number_id": "106540352242922", "access_token": secret("wa-access"),
		"app_secret": secret("wa-app"), "verify_token": secret("wa-verify"), "api_base_url": provider.URL}
	tk := map[string]string{"business_id": "biz-1", "access_token": secret("tk-access"), "client_secret": secret("tk-client"),
		"api_base_url": provider.URL}
	sm := map[string]string{"send_url": provider.URL + "/sms", "auth_token": secret("sms-auth"),
		"webhook_secret": secret("sms-hook"), "from": "+447700900123"}

	var created struct {
		AccessKey string `json:"access_key"`
	}
	if st := p.call("POST", "/api/v1/tenants", operatorToken, map[string]string{"name": "Secrets"}, &created); st != 201 {
		t.Fatalf("create tenant: %d", st)
	}
	if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": created.AccessKey + "x"}, nil); st != 401 {
		t.Fatalf("sign-in with a wrong key: %d, want 401", st)
	}
	var sess struct {
		Token string `json:"token"`
	}
	if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": created.AccessKey}, &sess); st != 201 {
		t.Fatalf("sign in: %d", st)
	}
	if st := p.call("GET", "/api/v1/agents", sess.Token+"x", nil, nil); st != 401 {
		t.Fatalf("a wrong session token: %d, want 401", st)
	}
	channel := func(typ string, cfg map[string]string) string {
		var c struct {
			Channel struct {
				ID string `json:"id"`
			} `json:"channel"`
		}
		if st := p.call("POST", "/api/v1/channels", sess.Token, map[string]any{"type": typ, "name": typ, "config": cfg}, &c); st != 201 {
			t.Fatalf("create %s channel: %d", typ, st)
		}
		return c.Channel.ID
	}
	waID, tkID, smsID := channel("whatsapp", wa), channel("tiktok", tk), channel("sms", sm)

	post := func(path string, body []byte, headers ...string) int {
		req, _ := http.NewRequest("POST", p.url+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// WhatsApp: the subscription check with the right and a wrong token,
	// a signed delivery and a forged one.
	for token, want := range map[string]int{wa["verify_token"]: 200, wa["verify_token"] + "x": 403} {
		resp, err := http.Get(p.url + "/webhooks/whatsapp/" + waID + "?hub.mode=subscribe&hub.verify_token=" + token + "&hub.challenge=7")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("WhatsApp subscription check: %d, want %d", resp.StatusCode, want)
		}
	}
	waBody := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Kerry"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.S1","timestamp":"1749416383","type":"text","text":{"body":"Hi"}}]}}]}]}`)
	mac := hmac.New(sha256.New, []byte(wa["app_secret"]))
	mac.Write(waBody)
	if st := post("/webhooks/whatsapp/"+waID, waBody, "X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil))); st != 200 {
		t.Fatalf("signed WhatsApp delivery: %d", st)
	}
	if st := post("/webhooks/whatsapp/"+waID, waBody, "X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64)); st != 401 {
		t.Fatalf("forged WhatsApp delivery: %d, want 401", st)
	}
	// SMS: signed and forged; TikTok: unsigned.
	smsBody := []byte(`{"id":"sms-in-1","from":"+15550100077","to":"+447700900123","text":"Hello","timestamp":1749416383}`)
	if st := post("/webhooks/sms/"+smsID, smsBody, sms.SignatureHeader, sms.Sign(sm["webhook_secret"], smsBody)); st/100 != 2 {
		t.Fatalf("signed SMS webhook: %d", st)
	}
	if st := post("/webhooks/sms/"+smsID, smsBody, sms.SignatureHeader, sms.Sign("not-the-secret", smsBody)); st != 401 {
		t.Fatalf("forged SMS webhook: %d, want 401", st)
	}
	if st := post("/webhooks/tiktok/"+tkID, []byte(`{}`)); st != 401 {
		t.Fatalf("unsigned TikTok webhook: %d, want 401", st)
	}

	// A reply on each conversation: the gateway takes the SMS one, the
	// Graph API refuses the WhatsApp one.
	var list struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	if st := p.call("GET", "/api/v1/conversations", sess.Token, nil, &list); st != 200 || len(list.Conversations) != 2 {
		t.Fatalf("conversations: %d, %d of them; want 2", st, len(list.Conversations))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws := p.dial(ctx, sess.Token, 0)
	for _, c := range list.Conversations {
		if st := p.call("POST", "/api/v1/conversations/"+c.ID+"/messages", sess.Token,
			map[string]string{"client_id": uuid.NewString(), "text": "Thanks"}, nil); st != 201 {
			t.Fatalf("reply: %d", st)
		}
	}
	// Both outcomes are recorded: one reply sent, one failed.
	outcomes := map[string]bool{}
	for len(outcomes) < 2 {
		f := ws.next(ctx)
		if f.Type != "event" || f.Event.Type != "message.updated" {
			continue
		}
		var m struct {
			Direction, Status string
		}
		json.Unmarshal(f.Event.Data, &m)
		if m.Direction == "out" && (m.Status == "sent" || m.Status == "failed") {
			outcomes[m.Status] = true
		}
	}
	ws.conn.Close(websocket.StatusNormalClosure, "")
	stopProc(t, p)

	logs := p.logs.String() + p.stdout.String()
	if !strings.Contains(logs, "level=DEBUG") {
		t.Fatalf("no debug lines in the server's log: the check below would prove little\n%s", logs)
	}
	secrets := map[string]string{"the access key": created.AccessKey, "the session token": sess.Token, "the operator token": operatorToken}
	for typ, cfg := range map[string]map[string]string{"whatsapp": wa, "tiktok": tk, "sms": sm} {
		for k, v := range cfg {
			if strings.Contains(k, "token") || strings.Contains(k, "secret") {
				secrets[typ+" "+k] = v
			}
		}
	}
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the server's log holds %s", what)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["/sms"] == 0 || calls["/v21.0/106540352242922/messages"] == 0 {
		t.Errorf("providers called %v, want the SMS gateway and the Graph API", calls)
	}
}
