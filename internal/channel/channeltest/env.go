// Package channeltest runs a real OneBox for the channel adapters' tests:
// bbolt in a temporary directory, the inbox service, the live stream and
// the HTTP API on 127.0.0.1, with the adapters under test wired in, and
// optionally the outbox worker. Only the providers are fake.
package channeltest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/httpapi"
	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/outbox"
	"github.com/onebox/onebox/internal/ws"
)

// Wait bounds every wait for something that should happen.
const Wait = 10 * time.Second

// Options shape an Env.
type Options struct {
	// Dir is the data directory; empty makes a temporary one. Reusing
	// one is how a test restarts the server.
	Dir string
	// Webhooks builds the adapters' webhooks once the service exists.
	Webhooks func(d Deps) map[string]channel.Webhook
	// Senders, when set, starts the outbox worker with these senders.
	Senders func(d Deps) map[string]inbox.Sender
	// Now is the service's and the worker's clock.
	Now func() time.Time
	// Logger receives the server's logs; nil keeps them for a failing
	// test's output.
	Logger *slog.Logger
	// Quiet drops the per-request access log (benchmarks).
	Quiet bool
	// MaxBody is the HTTP body limit (default 1 MiB).
	MaxBody int
	// OnCommit is the store's commit hook (duration, writes per commit).
	OnCommit func(time.Duration, int)
	// AdminKey signs in to the tenant an earlier Env on the same Dir
	// made (Env.AdminKey); empty makes a new tenant.
	AdminKey string
}

// Deps is what adapters are built from.
type Deps struct {
	Svc   *inbox.Service
	Media *Media
	Log   *slog.Logger
}

// Env is one running server.
type Env struct {
	t      testing.TB
	Dir    string
	Svc    *inbox.Service
	Store  *bolt.Store
	Media  *Media
	Events *Events
	URL    string
	Client *http.Client
	// Results receives each recorded send outcome of the outbox worker
	// (nil on success).
	Results    chan error
	Tenant     inbox.Tenant
	Admin      inbox.Principal
	AdminToken string
	AdminKey   string
	logs       *lockedBuffer

	stop    func()
	stopped bool
}

// Start runs a server until the test ends (or Stop).
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	e := &Env{t: t, Dir: o.Dir, Events: newEvents(), logs: &lockedBuffer{}, Results: make(chan error, 10000)}
	if e.Dir == "" {
		e.Dir = t.TempDir()
	}
	log := o.Logger
	if log == nil {
		level := slog.LevelDebug
		if o.Quiet {
			level = slog.LevelWarn
		}
		log = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: level}))
	}
	var store *bolt.Store
	h := hub.New(hub.Options{Logger: log, Fill: func(ctx context.Context, tenant string, since uint64) ([]inbox.Event, error) {
		evs, _, err := store.Events(ctx, tenant, since, 1000)
		return evs, err
	}})
	var err error
	store, err = bolt.Open(filepath.Join(e.Dir, "onebox.db"), bolt.Options{Logger: log, OnCommit: o.OnCommit,
		Publisher: inbox.PublisherFunc(func(evs []inbox.Event) {
			e.Events.Publish(evs)
			h.Publish(evs)
		})})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.Store = store
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e.URL = "http://" + ln.Addr().String()
	e.Svc, err = inbox.NewService(inbox.Config{Store: store, Live: h, PublicURL: e.URL, Logger: log, Now: o.Now,
		ReadReceipts: []string{inbox.ChannelWhatsApp}})
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	e.Media = NewMedia()
	stream := ws.NewServer(ws.Options{Backend: e.Svc, Hub: h, Logger: log})
	var hooks map[string]channel.Webhook
	if o.Webhooks != nil {
		hooks = o.Webhooks(Deps{e.Svc, e.Media, log})
	}
	// Channel tests and benchmarks drive webhooks far past the per-channel
	// rate limit, which has tests of its own in httpapi.
	off := httpapi.Rate{Per: -1}
	api := httpapi.New(httpapi.Config{Service: e.Svc, WebSocket: stream.ServeConn, Logger: log, Webhooks: hooks, MaxBody: o.MaxBody,
		Limits: httpapi.Limits{SignIn: off, Session: off, Webhook: off}})
	served := make(chan error, 1)
	go func() { served <- api.Serve(ln) }()

	bg, cancel := context.WithCancel(context.Background())
	workerDone := make(chan error, 1)
	if o.Senders != nil {
		w := outbox.New(outbox.Config{Service: e.Svc, Senders: o.Senders(Deps{e.Svc, e.Media, log}), Logger: log, Now: o.Now,
			PollInterval: 100 * time.Millisecond, SendTimeout: 5 * time.Second,
			OnResult: func(_ inbox.OutboxItem, err error) {
				select {
				case e.Results <- err:
				default:
				}
			}})
		e.Svc.SetOnOutbound(w.Wake)
		go func() { workerDone <- w.Run(bg) }()
	} else {
		workerDone <- nil
	}
	e.Client = &http.Client{Timeout: Wait, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	e.stop = func() {
		e.Client.CloseIdleConnections()
		ctx, done := context.WithTimeout(context.Background(), Wait)
		defer done()
		if err := api.Shutdown(ctx); err != nil {
			t.Errorf("shut down http: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := stream.Shutdown(ctx); err != nil {
			t.Errorf("shut down sockets: %v", err)
		}
		cancel()
		if err := <-workerDone; err != nil {
			t.Errorf("outbox worker: %v", err)
		}
		h.Close()
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	e.signIn(o.AdminKey)
	return e
}

// Stop shuts the server down, as a restart would; the data stays in Dir.
func (e *Env) Stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	e.stop()
}

// signIn signs in to the tenant of key, or makes a tenant when key is
// empty.
func (e *Env) signIn(key string) {
	ctx := context.Background()
	if key == "" {
		var err error
		if _, _, _, key, err = e.Svc.CreateTenant(ctx, "Shop"); err != nil {
			e.t.Fatalf("create tenant: %v", err)
		}
	}
	p, tok, err := e.Svc.SignIn(ctx, key, inbox.Device{Name: "test"})
	if err != nil {
		e.t.Fatalf("sign in: %v", err)
	}
	e.Tenant, e.Admin, e.AdminToken, e.AdminKey = p.Tenant, p, tok, key
}

// CreateChannel creates a channel over the API, as an admin would, and
// returns it with its webhook URL.
func (e *Env) CreateChannel(typ string, config map[string]string) inbox.Channel {
	e.t.Helper()
	var out struct {
		Channel inbox.Channel `json:"channel"`
	}
	r := e.Do("POST", "/api/v1/channels", map[string]string{"Authorization": "Bearer " + e.AdminToken},
		mustJSON(e.t, map[string]any{"type": typ, "name": typ + " line", "config": config}))
	if r.Status != http.StatusCreated {
		e.t.Fatalf("create channel: %d %s", r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		e.t.Fatalf("create channel: %v", err)
	}
	if bytes.Contains(r.Body, []byte("secret")) || bytes.Contains(r.Body, []byte("token")) {
		e.t.Errorf("channel answer shows config: %s", r.Body)
	}
	return out.Channel
}

// Response is an HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r Response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// Do sends one request to the server. path may be a full URL.
func (e *Env) Do(method, path string, headers map[string]string, body []byte) Response {
	e.t.Helper()
	url := path
	if !strings.HasPrefix(path, "http") {
		url = e.URL + path
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Messages lists a conversation's messages (oldest first).
func (e *Env) Messages(convID string) []inbox.Message {
	e.t.Helper()
	msgs, err := e.Svc.ListMessages(context.Background(), e.Admin, convID, "", 200)
	if err != nil {
		e.t.Fatalf("list messages: %v", err)
	}
	return msgs
}

// Conversations lists the tenant's conversations.
func (e *Env) Conversations() []inbox.Conversation {
	e.t.Helper()
	cs, _, err := e.Svc.ListConversations(context.Background(), e.Admin, inbox.Filter{Limit: 200})
	if err != nil {
		e.t.Fatalf("list conversations: %v", err)
	}
	return cs
}

// Head is the tenant's event log head: a failed webhook must not move it.
func (e *Env) Head() uint64 {
	e.t.Helper()
	_, head, err := e.Store.Events(context.Background(), e.Tenant.ID, 0, 1)
	if err != nil {
		e.t.Fatalf("events: %v", err)
	}
	return head
}

// Reply writes an agent's reply through the service.
func (e *Env) Reply(convID, text string) inbox.Message {
	e.t.Helper()
	m, _, err := e.Svc.SendMessage(context.Background(), e.Admin, convID, inbox.Draft{ClientID: newUUID(), Text: text})
	if err != nil {
		e.t.Fatalf("reply: %v", err)
	}
	return m
}

// Result waits for the outbox's next recorded send outcome.
func (e *Env) Result() error {
	e.t.Helper()
	select {
	case err := <-e.Results:
		return err
	case <-time.After(Wait):
		e.t.Fatal("timed out waiting for a send result")
		return nil
	}
}

// Item is the outbox item of a message, if it is still queued.
func (e *Env) Item(msgID string) (inbox.OutboxItem, bool) {
	e.t.Helper()
	due, _, err := e.Svc.Due(context.Background(), time.Now().Add(100*365*24*time.Hour), 10000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range due {
		if g.Item.MessageID == msgID {
			return g.Item, true
		}
	}
	return inbox.OutboxItem{}, false
}

// Logs is what the server logged so far.
func (e *Env) Logs() string { return e.logs.String() }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
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
