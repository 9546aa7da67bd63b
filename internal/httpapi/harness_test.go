package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/metrics"
)

// harness is one real server: bbolt in a temp dir, Fiber on 127.0.0.1:0,
// spoken to with net/http.
type harness struct {
	t       *testing.T
	svc     *inbox.Service
	srv     *Server
	url     string
	client  *http.Client
	logs    *lockedBuffer
	metrics *metrics.Registry
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type harnessOpt func(cfg *Config, before *[]func(*Server))

func withConfig(f func(*Config)) harnessOpt {
	return func(cfg *Config, _ *[]func(*Server)) { f(cfg) }
}

// beforeServe lets a test add routes of its own (panics, hijacks) to the
// app before it starts.
func beforeServe(f func(*Server)) harnessOpt {
	return func(_ *Config, before *[]func(*Server)) { *before = append(*before, f) }
}

func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	store, err := openStore(t, log) // bbolt, or PostgreSQL under TestPostgres
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	url := "http://" + ln.Addr().String()
	svc, err := inbox.NewService(inbox.Config{Store: store, PublicURL: url, Logger: log})
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	reg := metrics.NewRegistry()
	cfg := Config{Service: svc, Logger: log, Metrics: reg, MaxBody: 64 << 10,
		// Tests sign in and call far faster than people; ratelimit_test.go
		// turns the limits on.
		Limits: Limits{SignIn: Rate{Per: -1}, Session: Rate{Per: -1}, Webhook: Rate{Per: -1}}}
	var before []func(*Server)
	for _, o := range opts {
		o(&cfg, &before)
	}
	srv := New(cfg)
	for _, f := range before {
		f(srv)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	h := &harness{
		t: t, svc: svc, srv: srv, url: url, logs: logs, metrics: reg,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}},
	}
	t.Cleanup(func() {
		h.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve returned %v after shutdown, want nil", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return h
}

// response is what a test looks at: status, headers, raw body.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) String() string {
	return fmt.Sprintf("%d %s", r.status, r.body)
}

// json decodes the body into v, failing the test when it is not JSON.
func (r *response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %s is not JSON: %v", r, err)
	}
}

// obj decodes the body as a JSON object.
func (r *response) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.json(t, &m)
	return m
}

// raw is a body sent as is (malformed JSON, oversized bodies).
type raw string

// req sends one request. body is JSON-encoded unless it is raw or nil.
func (h *harness) req(method, path, token string, body any, headers ...string) *response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case raw:
		rd = strings.NewReader(string(b))
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			h.t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(enc)
	}
	r, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.client.Do(r)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// want fails unless the response has the status.
func (h *harness) want(r *response, status int) *response {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("got %s, want status %d", r, status)
	}
	return r
}

// wantErr checks the contract's error shape: status, code, a message.
func (h *harness) wantErr(r *response, status int, code string) {
	h.t.Helper()
	checkErr(h.t, r, status, code)
}

func checkErr(t *testing.T, r *response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("got %s, want status %d (%s)", r, status, code)
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var e struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == nil {
		t.Errorf("error body %s is not {\"error\":{...}}", r.body)
		return
	}
	if e.Error.Code != code {
		t.Errorf("error code = %q, want %q (body %s)", e.Error.Code, code, r.body)
	}
	if e.Error.Message == "" {
		t.Errorf("error without a message: %s", r.body)
	}
	if status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("401 without WWW-Authenticate: Bearer (got %q)", r.header.Get("WWW-Authenticate"))
	}
}

// errMessage returns the message of an error response.
func errMessage(t *testing.T, r *response) string {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	r.json(t, &e)
	return e.Error.Message
}

// team is one tenant as a test sees it: an admin and an agent, signed in.
type team struct {
	tenantID   string
	adminID    string
	adminKey   string
	adminToken string
	agentID    string
	agentKeyID string
	agentKey   string
	agentToken string
	channelID  string
}

// newTeam creates a tenant through the service (as `onebox tenant create`
// does), then everything else through the API.
func (h *harness) newTeam(name string) *team {
	h.t.Helper()
	tn, adm, _, key, err := h.svc.CreateTenant(context.Background(), name)
	if err != nil {
		h.t.Fatalf("create tenant: %v", err)
	}
	tm := &team{tenantID: tn.ID, adminID: adm.ID, adminKey: key}
	tm.adminToken = h.signIn(key)

	var created struct {
		Agent struct {
			ID string `json:"id"`
		} `json:"agent"`
		Key struct {
			ID string `json:"id"`
		} `json:"key"`
		AccessKey string `json:"access_key"`
	}
	h.want(h.req("POST", "/api/v1/agents", tm.adminToken,
		map[string]any{"name": "Ada " + name, "email": "ada@" + strings.ToLower(name) + ".example", "role": "agent"}), 201).json(h.t, &created)
	tm.agentID, tm.agentKeyID, tm.agentKey = created.Agent.ID, created.Key.ID, created.AccessKey
	tm.agentToken = h.signIn(tm.agentKey)

	var ch struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	h.want(h.req("POST", "/api/v1/channels", tm.adminToken, map[string]any{"type": "demo", "name": "Demo"}), 201).json(h.t, &ch)
	tm.channelID = ch.Channel.ID
	return tm
}

func (h *harness) signIn(key string) string {
	h.t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	h.want(h.req("POST", "/api/v1/session", "", map[string]any{
		"access_key": key, "device": map[string]string{"name": "test", "platform": "go"},
	}), 201).json(h.t, &s)
	if s.Token == "" {
		h.t.Fatal("sign-in answered no token")
	}
	return s.Token
}

// receive brings in one customer message on the team's demo channel and
// returns the conversation and message ids.
func (h *harness) receive(tm *team, handle, text string) (convID, msgID string) {
	h.t.Helper()
	got, err := h.svc.Receive(context.Background(), tm.channelID, []inbox.Inbound{{
		ExternalID: uuid.NewString(), ContactHandle: handle, ContactName: "Customer " + handle, Text: text,
	}})
	if err != nil {
		h.t.Fatalf("receive: %v", err)
	}
	return got[0].Message.ConversationID, got[0].Message.ID
}

// head is the team's event log head, the cheapest proof that a failed
// call wrote nothing.
func (h *harness) head(token string) uint64 {
	h.t.Helper()
	var ev struct {
		Head uint64 `json:"head"`
	}
	h.want(h.req("GET", "/api/v1/events?since=0&limit=1", token, nil), 200).json(h.t, &ev)
	return ev.Head
}

// unchanged fails if the log head moved since before.
func (h *harness) unchanged(token string, before uint64) {
	h.t.Helper()
	if after := h.head(token); after != before {
		h.t.Errorf("event head moved from %d to %d: a failed call wrote something", before, after)
	}
}

func newClientID() string { return uuid.NewString() }
