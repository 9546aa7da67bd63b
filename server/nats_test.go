package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/onebox/onebox/internal/pgtest"
)

// startNATS runs a NATS server in the test process on a free loopback port
// and returns its URL.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

// Two real processes on one PostgreSQL database and one NATS server: a
// customer message received by one reaches a socket held by the other,
// every reply (written through either) reaches the provider exactly once,
// and the outbox runs in one process only.
func TestTwoProcessesShareDatabaseAndNATS(t *testing.T) {
	var (
		mu   sync.Mutex
		sent = map[string]int{}
		got  = make(chan struct{}, 100)
	)
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Text struct {
				Body string `json:"body"`
			} `json:"text"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		sent[body.Text.Body]++
		mu.Unlock()
		got <- struct{}{}
		fmt.Fprintf(w, `{"messaging_product":"whatsapp","messages":[{"id":"wamid.%s"}]}`, uuid.NewString())
	}))
	defer graph.Close()

	env := append(pgEnv(pgtest.DSN(t), t.TempDir()), "ONEBOX_NATS_URL="+startNATS(t))
	a := startEnv(t, env, t.TempDir(), "--log-level", "debug")
	b := startEnv(t, env, t.TempDir(), "--log-level", "debug")

	tm := a.newTeam("Two Processes")
	var ch struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if st := a.call("POST", "/api/v1/channels", tm.token, map[string]any{"type": "whatsapp", "name": "WA", "config": map[string]string{
		"phone_number_id": "106540352242922", "access_token": "tok", "app_secret": "sec", "verify_token": "vt", "api_base_url": graph.URL,
	}}, &ch); st != 201 {
		t.Fatalf("create channel: %d", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.Replace(b.url, "http", "ws", 1)+"/api/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	head := uint64(len(b.events(tm)))
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": tm.token, "since": head})
	if err := conn.Write(ctx, websocket.MessageText, hello); err != nil {
		t.Fatal(err)
	}
	if _, welcome, err := conn.Read(ctx); err != nil || !strings.Contains(string(welcome), `"welcome"`) {
		t.Fatalf("welcome: %s %v", welcome, err)
	}

	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Kerry"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.IN1","timestamp":"1749416383","type":"text","text":{"body":"Hi from process A"}}]}}]}]}`)
	mac := hmac.New(sha256.New, []byte("sec"))
	mac.Write(body)
	req, _ := http.NewRequest("POST", a.url+"/webhooks/whatsapp/"+ch.Channel.ID, bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("signed delivery: %d", resp.StatusCode)
	}
	// The socket on B hears of the message A stored.
	for {
		_, frame, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("socket on the other process: %v", err)
		}
		if strings.Contains(string(frame), "Hi from process A") {
			break
		}
	}

	var list struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	b.call("GET", "/api/v1/conversations", tm.token, nil, &list)
	if len(list.Conversations) != 1 {
		t.Fatalf("%d conversations, want 1", len(list.Conversations))
	}
	const replies = 6
	for i := range replies {
		p := a
		if i%2 == 1 {
			p = b
		}
		if st := p.call("POST", "/api/v1/conversations/"+list.Conversations[0].ID+"/messages", tm.token,
			map[string]string{"client_id": uuid.NewString(), "text": fmt.Sprintf("reply %d", i)}, nil); st != 201 {
			t.Fatalf("reply %d: %d", i, st)
		}
	}
	for range replies {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("replies sent: %v", sent)
		}
	}
	// Each reply's status comes back once it was sent; by then a second
	// send would have had every chance to happen.
	for i := range replies {
		waitSentStatus(t, b, tm, fmt.Sprintf("reply %d", i))
	}
	mu.Lock()
	for i := range replies {
		if n := sent[fmt.Sprintf("reply %d", i)]; n != 1 {
			t.Errorf("reply %d sent %d times, want once", i, n)
		}
	}
	mu.Unlock()
	takers := 0
	for _, p := range []*proc{a, b} {
		takers += strings.Count(p.logs.String(), `msg="jobs: lease taken; running" job=outbox`)
	}
	if takers != 1 {
		t.Errorf("the outbox lease was taken %d times, want once:\nA:\n%s\nB:\n%s", takers, a.logs.String(), b.logs.String())
	}
}

// waitSentStatus waits until the reply with text is marked sent.
func waitSentStatus(t *testing.T, p *proc, tm team, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range p.events(tm) {
			if e.Type != "message.created" && e.Type != "message.updated" {
				continue
			}
			var m struct {
				Text   string `json:"text"`
				Status string `json:"status"`
			}
			json.Unmarshal(e.Data, &m)
			if m.Text == text && m.Status == "sent" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond) // polling the API: external state
	}
	t.Fatalf("%q was never marked sent", text)
}

// Two processes start while their NATS server is down. Both are ready
// (the store answers), and each one's own sockets get the events it
// commits. Once NATS starts, the socket on the other process gets what it
// missed with no further call, and live events cross processes again.
func TestProcessesServeWhileNATSIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	env := append(pgEnv(pgtest.DSN(t), t.TempDir()),
		fmt.Sprintf("ONEBOX_NATS_URL=nats://127.0.0.1:%d", port), "ONEBOX_CATCH_UP_INTERVAL=200ms")
	a := startEnv(t, env, t.TempDir())
	b := startEnv(t, env, t.TempDir())
	for name, p := range map[string]*proc{"A": a, "B": b} {
		if st := p.call("GET", "/readyz", "", nil, nil); st != 200 {
			t.Fatalf("process %s with NATS down answers /readyz with %d, want 200", name, st)
		}
	}
	tm := a.newTeam("NATS Down")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	head := uint64(len(a.events(tm)))
	sa, sb := openStream(ctx, t, a, tm, head), openStream(ctx, t, b, tm, head)

	addAgent := func(p *proc, name string) {
		t.Helper()
		if st := p.call("POST", "/api/v1/agents", tm.token, map[string]string{"name": name, "email": name + "@example.com", "role": "agent"}, nil); st != 201 {
			t.Fatalf("add agent %s: %d", name, st)
		}
	}
	addAgent(a, "ada")
	first := sa.next(t) // A's own socket, NATS or not
	if first.Seq != head+1 || !strings.Contains(string(first.Data), "ada") {
		t.Fatalf("socket on A got seq %d %s, want seq %d about ada", first.Seq, first.Data, head+1)
	}

	// NATS comes up; B's socket gets the event it missed, with nothing
	// committed after it.
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if got := sb.next(t); got.Seq != head+1 || !strings.Contains(string(got.Data), "ada") {
		t.Fatalf("socket on B got seq %d %s, want seq %d about ada", got.Seq, got.Data, head+1)
	}
	// Live across processes, both ways, each event once.
	addAgent(b, "bo")
	addAgent(a, "cy")
	for name, st := range map[string]*stream{"A": sa, "B": sb} {
		for i, who := range []string{"bo", "cy"} {
			got := st.next(t)
			if got.Seq != head+2+uint64(i) || !strings.Contains(string(got.Data), who) {
				t.Fatalf("socket on %s got seq %d %s, want seq %d about %s", name, got.Seq, got.Data, head+2+uint64(i), who)
			}
		}
	}
}

// stream is a live socket that hands out its event frames one by one.
type stream struct {
	ctx  context.Context
	conn *websocket.Conn
}

func openStream(ctx context.Context, t *testing.T, p *proc, tm team, since uint64) *stream {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, strings.Replace(p.url, "http", "ws", 1)+"/api/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": tm.token, "since": since})
	if err := conn.Write(ctx, websocket.MessageText, hello); err != nil {
		t.Fatal(err)
	}
	if _, welcome, err := conn.Read(ctx); err != nil || !strings.Contains(string(welcome), `"welcome"`) {
		t.Fatalf("welcome: %s %v", welcome, err)
	}
	return &stream{ctx: ctx, conn: conn}
}

// next returns the next event, skipping presence and typing frames.
func (s *stream) next(t *testing.T) event {
	t.Helper()
	for {
		_, b, err := s.conn.Read(s.ctx)
		if err != nil {
			t.Fatalf("socket: %v", err)
		}
		var f struct {
			Type  string `json:"type"`
			Event event  `json:"event"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		if f.Type == "event" {
			return f.Event
		}
	}
}
