package browsertest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// gateway is a loopback SMS gateway speaking the protocol of
// docs/channels.md: it checks the Bearer token and the body of every send,
// counts the sends it accepts, and can refuse chosen texts once with a 400,
// as a gateway does for a number it cannot reach.
type gateway struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu    sync.Mutex
	sends []smsSend
	fail  map[string]string // text -> error answered once
	seen  chan struct{}     // signalled on every accepted send
}

type smsSend struct {
	ID, From, To, Text string
	GatewayID          string
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{t: t, token: fmt.Sprintf("gw-token-%d", time.Now().UnixNano()), fail: map[string]string{}, seen: make(chan struct{}, 64)}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		g.t.Errorf("gateway: %s %s, want POST", r.Method, r.URL.Path)
		http.Error(w, `{"error":"method"}`, http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+g.token {
		g.t.Errorf("gateway: Authorization %q, want the channel's auth_token", r.Header.Get("Authorization"))
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	var body struct {
		ID   string `json:"id"`
		From string `json:"from"`
		To   string `json:"to"`
		Text string `json:"text"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.ID == "" || body.To == "" || body.Text == "" {
		g.t.Errorf("gateway: bad send body (%v): %+v", err, body)
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	g.mu.Lock()
	if msg, ok := g.fail[body.Text]; ok {
		delete(g.fail, body.Text)
		g.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	s := smsSend{ID: body.ID, From: body.From, To: body.To, Text: body.Text, GatewayID: fmt.Sprintf("SM%d", len(g.sends)+1)}
	g.sends = append(g.sends, s)
	g.mu.Unlock()
	select {
	case g.seen <- struct{}{}:
	default:
	}
	json.NewEncoder(w).Encode(map[string]string{"id": s.GatewayID})
}

// failOnce makes the next send of text answer 400 with msg.
func (g *gateway) failOnce(text, msg string) {
	g.mu.Lock()
	g.fail[text] = msg
	g.mu.Unlock()
}

// sent returns the accepted sends of text.
func (g *gateway) sent(text string) []smsSend {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []smsSend
	for _, s := range g.sends {
		if s.Text == text {
			out = append(out, s)
		}
	}
	return out
}

// waitSent waits until text has been accepted at least once.
func (g *gateway) waitSent(text string, timeout time.Duration) smsSend {
	g.t.Helper()
	deadline := time.After(timeout)
	for {
		if s := g.sent(text); len(s) > 0 {
			return s[0]
		}
		select {
		case <-g.seen:
		case <-deadline:
			g.t.Fatalf("gateway: %q not sent within %v", text, timeout)
		}
	}
}

const smsWebhookSecret = "sms-webhook-secret"

// smsCallback posts a callback to the channel's webhook, signed as the
// gateway signs it.
func (s *server) smsCallback(tn tenant, body any) {
	s.t.Helper()
	raw, _ := json.Marshal(body)
	mac := hmac.New(sha256.New, []byte(smsWebhookSecret))
	mac.Write(raw)
	req, _ := http.NewRequest("POST", s.base+"/webhooks/sms/"+tn.smsID, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Onebox-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("SMS callback: %v", err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		s.t.Fatalf("SMS callback %s = %d %s", raw, res.StatusCode, data)
	}
}

// smsStatus reports a gateway status for a send.
func (s *server) smsStatus(tn tenant, gatewayID, status string) {
	s.t.Helper()
	s.smsCallback(tn, map[string]string{"id": gatewayID, "status": status})
}

// smsCustomer is a customer's text arriving through the gateway's signed
// webhook; it returns the conversation it landed in.
func (s *server) smsCustomer(tn tenant, from, text string) string {
	s.t.Helper()
	s.smsCallback(tn, map[string]any{"from": from, "to": smsNumber, "text": text, "id": fmt.Sprintf("in-%d", time.Now().UnixNano()), "timestamp": time.Now().Unix()})
	return s.conversationOf(tn, from)
}

// conversationOf finds the conversation of the contact with handle.
func (s *server) conversationOf(tn tenant, handle string) string {
	s.t.Helper()
	var r struct {
		Conversations []struct {
			ID      string
			Contact struct{ Handle string }
		}
	}
	s.call("GET", "/api/v1/conversations?status=&limit=200", tn.adminToken, nil, &r, 200)
	for _, c := range r.Conversations {
		if c.Contact.Handle == handle {
			return c.ID
		}
	}
	s.t.Fatalf("no conversation with %s", handle)
	return ""
}

const smsNumber = "+4930900000"

// withSMS adds an SMS channel on gw to the tenant.
func (s *server) withSMS(tn *tenant, gw *gateway) {
	s.t.Helper()
	var ch struct{ Channel struct{ ID string } }
	s.call("POST", "/api/v1/channels", tn.adminToken, map[string]any{"type": "sms", "name": "SMS " + smsNumber, "config": map[string]string{
		"send_url": gw.srv.URL + "/send", "auth_token": gw.token, "webhook_secret": smsWebhookSecret, "from": smsNumber,
	}}, &ch, 201)
	tn.smsID = ch.Channel.ID
}
