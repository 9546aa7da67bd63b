package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/pgtest"
)

// binary is the onebox command built once for these tests: they run the
// real process, kill it and start it again, as an operator would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "onebox-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "onebox")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build onebox:", err)
		os.Exit(1)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

const operatorToken = "test-operator-token-0123456789"

// proc is one running server process.
type proc struct {
	logs   *syncBuffer // the server's log (stderr)
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	stdout *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // nudged after every write, when made
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if s.changed != nil {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
	return n, err
}

// waitMatches waits until re matches at least n times in what was written:
// a child's stdout arrives through a pipe, after its stderr may have said
// more.
func (s *syncBuffer) waitMatches(t *testing.T, re *regexp.Regexp, n int) [][]string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if m := re.FindAllStringSubmatch(s.String(), -1); len(m) >= n {
			return m
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("output has %d matches of %s, want %d:\n%s", len(re.FindAllString(s.String(), -1)), re, n, s.String())
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listening = regexp.MustCompile(`msg="onebox listening" addr=(\S+)`)

// start runs `onebox serve` on a free loopback port and waits until it
// says where it listens.
func start(t *testing.T, dataDir string, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, dataDir, args...)
}

// startEnv is start with extra environment variables (KEY=value).
func startEnv(t *testing.T, env []string, dataDir string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dataDir}, args...)...)
	cmd.Env = append(append(os.Environ(), "ONEBOX_OPERATOR_TOKEN="+operatorToken), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, stdout: &syncBuffer{changed: make(chan struct{}, 1)}, done: make(chan error, 1)}
	cmd.Stdout = p.stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	logs := &syncBuffer{changed: make(chan struct{}, 1)}
	p.logs = logs
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case err := <-p.done:
		t.Fatalf("server exited before listening: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start listening\n%s", logs.String())
	}
	return p
}

func (p *proc) call(method, path, token string, body any, out any) int {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// team is a tenant made over the operator API, with a demo channel.
type team struct {
	token, channelID string
}

func (p *proc) newTeam(name string) team {
	p.t.Helper()
	var created struct {
		AccessKey string `json:"access_key"`
	}
	if st := p.call("POST", "/api/v1/tenants", operatorToken, map[string]string{"name": name}, &created); st != 201 {
		p.t.Fatalf("create tenant: %d", st)
	}
	var s struct {
		Token string `json:"token"`
	}
	if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": created.AccessKey}, &s); st != 201 {
		p.t.Fatalf("sign in: %d", st)
	}
	var ch struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if st := p.call("POST", "/api/v1/channels", s.Token, map[string]any{"type": "demo", "name": "Test"}, &ch); st != 201 {
		p.t.Fatalf("create channel: %d", st)
	}
	return team{token: s.Token, channelID: ch.Channel.ID}
}

type event struct {
	Seq  uint64          `json:"seq"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// events reads the whole log of the team's tenant.
func (p *proc) events(tm team) []event {
	p.t.Helper()
	var all []event
	var since uint64
	for {
		var page struct {
			Events []event `json:"events"`
			Head   uint64  `json:"head"`
		}
		if st := p.call("GET", fmt.Sprintf("/api/v1/events?since=%d&limit=200", since), tm.token, nil, &page); st != 200 {
			p.t.Fatalf("events: %d", st)
		}
		all = append(all, page.Events...)
		if len(page.Events) == 0 || page.Events[len(page.Events)-1].Seq >= page.Head {
			return all
		}
		since = page.Events[len(page.Events)-1].Seq
	}
}

// TestAcknowledgedMessagesSurviveSIGKILL writes customer messages from
// several clients, kills the server mid-stream without warning, and checks
// that every message the server acknowledged is there after a restart and
// that the log goes on from its head without a gap.
func TestAcknowledgedMessagesSurviveSIGKILL(t *testing.T) {
	data := t.TempDir()
	p := start(t, data)
	tm := p.newTeam("Crash Test Dummies")

	var mu sync.Mutex
	acked := map[string]bool{}
	firstAcks := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ext := fmt.Sprintf("w%d-%d", w, i)
				body := map[string]any{"channel_id": tm.channelID, "messages": []any{map[string]any{
					"external_id": ext, "from": fmt.Sprintf("+1555000%02d", w), "text": "message " + ext}}}
				var out struct {
					Messages []struct {
						ID string `json:"id"`
					} `json:"messages"`
				}
				if p.call("POST", "/api/v1/operator/inbound", operatorToken, body, &out) != 201 {
					return // the server is gone
				}
				mu.Lock()
				acked[out.Messages[0].ID] = true
				n := len(acked)
				mu.Unlock()
				if n >= 200 {
					once.Do(func() { close(firstAcks) })
				}
			}
		}(w)
	}
	select {
	case <-firstAcks:
	case <-time.After(60 * time.Second):
		t.Fatal("no acknowledgements")
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	close(stop)
	wg.Wait()

	p2 := start(t, data)
	evs := p2.events(tm) // the session survives the restart too
	stored := map[string]bool{}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: the log has a gap", i+1, e.Seq)
		}
		if e.Type == "message.created" {
			var m struct {
				ID string `json:"id"`
			}
			json.Unmarshal(e.Data, &m)
			if stored[m.ID] {
				t.Fatalf("message %s stored twice", m.ID)
			}
			stored[m.ID] = true
		}
	}
	for id := range acked {
		if !stored[id] {
			t.Fatalf("acknowledged message %s lost in the crash", id)
		}
	}
	head := uint64(len(evs))
	var out struct {
		Messages []struct{ ID string } `json:"messages"`
	}
	if st := p2.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tm.channelID,
		"messages": []any{map[string]any{"external_id": uuid.NewString(), "from": "+15559999", "text": "after restart"}}}, &out); st != 201 {
		t.Fatalf("write after restart: %d", st)
	}
	after := p2.events(tm)
	if len(after) <= int(head) || after[head].Seq != head+1 {
		t.Fatalf("log did not continue from head %d", head)
	}
	t.Logf("%d acknowledged before the kill, %d stored, head %d", len(acked), len(stored), head)
}

// TestSIGTERMClosesSocketsAndExitsZero checks the graceful stop: live
// sockets are told the server is going away (1001) and the process exits 0.
func TestSIGTERMClosesSocketsAndExitsZero(t *testing.T) {
	p := start(t, t.TempDir())
	tm := p.newTeam("Graceful")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.Replace(p.url, "http", "ws", 1)+"/api/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": tm.token, "since": 0})
	if err := conn.Write(ctx, websocket.MessageText, hello); err != nil {
		t.Fatal(err)
	}
	_, welcome, err := conn.Read(ctx)
	if err != nil || !strings.Contains(string(welcome), `"welcome"`) {
		t.Fatalf("welcome: %s %v", welcome, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err = conn.Read(ctx)
		if err != nil {
			break
		}
	}
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("socket closed with %v (%v), want 1001", got, err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
	case <-ctx.Done():
		t.Fatal("server did not exit after SIGTERM")
	}
}

// TestDemoModePrintsKeysAndCustomersWriteIn is `make run` in miniature.
func TestDemoModePrintsKeysAndCustomersWriteIn(t *testing.T) {
	data := t.TempDir()
	p := start(t, data, "--demo")
	keys := p.stdout.waitMatches(t, regexp.MustCompile(`(admin|agent)\s+.*\s(obx_[a-z2-7]{32})`), 3)
	if len(keys) != 3 {
		t.Fatalf("demo printed %d keys, want 3:\n%s", len(keys), p.stdout.String())
	}
	var s struct {
		Token string `json:"token"`
	}
	if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": keys[1][2]}, &s); st != 201 {
		t.Fatalf("sign in with a printed key: %d", st)
	}
	tm := team{token: s.Token}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.Replace(p.url, "http", "ws", 1)+"/api/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": tm.token, "since": 0})
	conn.Write(ctx, websocket.MessageText, hello)
	for {
		_, frame, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("no customer message arrived: %v", err)
		}
		if strings.Contains(string(frame), `"message.created"`) && strings.Contains(string(frame), `"direction":"in"`) {
			break
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Fatalf("exit: %v", err)
	}

	// A restart keeps the team and issues new keys; the old ones stop working.
	p2 := start(t, data, "--demo")
	if st := p2.call("POST", "/api/v1/session", "", map[string]any{"access_key": keys[1][2]}, nil); st != 401 {
		t.Fatalf("last run's key still signs in: %d", st)
	}
	p2.stdout.waitMatches(t, regexp.MustCompile(`Demo Shop`), 1)
}

func TestCommands(t *testing.T) {
	data := t.TempDir()
	out, err := exec.Command(binary, "tenant", "create", "--name", "Acme Support", "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("tenant create: %v\n%s", err, out)
	}
	key := regexp.MustCompile(`obx_[a-z2-7]{32}`).FindString(string(out))
	if key == "" || !strings.Contains(string(out), "shown only this once") {
		t.Fatalf("tenant create printed:\n%s", out)
	}
	p := start(t, data)
	if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": key}, nil); st != 201 {
		t.Fatalf("sign in with the printed key: %d", st)
	}
	// The store is locked while the server runs: the command says what to do.
	out, err = exec.Command(binary, "tenant", "create", "--name", "Second", "--data", data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "POST /api/v1/tenants") {
		t.Fatalf("tenant create against a running server: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "onebox ") {
		t.Fatalf("version: %v %s", err, out)
	}
	var exitErr *exec.ExitError
	if _, err := exec.Command(binary, "bogus").CombinedOutput(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 {
		t.Fatalf("unknown command: %v", err)
	}
	if _, err := exec.Command(binary, "serve", "--log-level", "loud").CombinedOutput(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("bad log level: %v", err)
	}
}

// wsClient is an agent's live connection in these tests.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func (p *proc) dial(ctx context.Context, token string, since uint64) *wsClient {
	p.t.Helper()
	conn, _, err := websocket.Dial(ctx, strings.Replace(p.url, "http", "ws", 1)+"/api/v1/ws", nil)
	if err != nil {
		p.t.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	p.t.Cleanup(func() { conn.CloseNow() })
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": token, "since": since})
	if err := conn.Write(ctx, websocket.MessageText, hello); err != nil {
		p.t.Fatal(err)
	}
	return &wsClient{t: p.t, conn: conn}
}

type frame struct {
	Type  string `json:"type"`
	Head  uint64 `json:"head"`
	Event event  `json:"event"`
	raw   string
}

func (c *wsClient) next(ctx context.Context) frame {
	c.t.Helper()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame %s: %v", b, err)
	}
	f.raw = string(b)
	return f
}

// TestLiveStreamKeepsTenantsApart runs two teams on one server: each one's
// socket gets its own log in order, and nothing of the other team.
func TestLiveStreamKeepsTenantsApart(t *testing.T) {
	p := start(t, t.TempDir())
	a, b := p.newTeam("Alpha"), p.newTeam("Bravo")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sa, sb := p.dial(ctx, a.token, 0), p.dial(ctx, b.token, 0)
	for _, s := range []*wsClient{sa, sb} {
		if f := s.next(ctx); f.Type != "welcome" {
			t.Fatalf("first frame %s", f.raw)
		}
	}
	inject := func(tm team, from, text string) {
		if st := p.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tm.channelID,
			"messages": []any{map[string]any{"external_id": uuid.NewString(), "from": from, "text": text}}}, nil); st != 201 {
			t.Fatalf("inject: %d", st)
		}
	}
	for i := 0; i < 20; i++ {
		inject(a, fmt.Sprintf("+1555%03d", i%4), "alpha secret "+fmt.Sprint(i))
	}
	inject(b, "+4915100", "bravo marker")

	headA := uint64(len(p.events(a)))
	var want uint64 = 1
	for want <= headA {
		f := sa.next(ctx)
		if f.Type != "event" {
			continue
		}
		if f.Event.Seq != want {
			t.Fatalf("alpha got seq %d, want %d", f.Event.Seq, want)
		}
		want++
	}
	for {
		f := sb.next(ctx)
		if strings.Contains(f.raw, "alpha secret") || strings.Contains(f.raw, a.channelID) {
			t.Fatalf("bravo's socket saw alpha's data: %s", f.raw)
		}
		if strings.Contains(f.raw, "bravo marker") {
			break
		}
	}
}
