package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/channel/sms"
	"github.com/onebox/onebox/internal/outbox"
)

// Shape of the crash run. Kills come at a random moment of each server's
// life, from right after it starts listening (while it is still resending
// what the last one left) to a second in.
const (
	crashKills       = 20
	crashMaxLife     = time.Second
	crashHookPosters = 4
	// The agent answers one customer at a time with one to crashReplyBurst
	// replies, a crashReplyPause apart on average: about what the channel
	// sends a second, and a conversation's replies go out one by one, so a
	// queue forms now and then and a kill finds it.
	crashReplyPause = 300 * time.Millisecond
	crashReplyBurst = 4
	// crashGatewayLatency is the most the gateway takes to answer a send:
	// a real one takes tens of milliseconds, and that is the window in
	// which a kill leaves a send's outcome unknown.
	crashGatewayLatency = 200 * time.Millisecond
	crashGatewayToken   = "gw-crash-token"
	crashHookSecret     = "gw-crash-webhook-secret"
	crashFrom           = "+447700900999"
)

// crashContacts are the customers writing in; each is one conversation.
var crashContacts = []string{"+15550100001", "+15550100002", "+15550100003", "+15550100004", "+15550100005", "+15550100006"}

// TestSurvivesRepeatedSIGKILLUnderLoad runs the real binary under a steady
// load of signed SMS webhooks with an agent connected and replying, kills
// it with SIGKILL at random moments, restarts it on the same data
// directory each time, and then checks what an operator is promised:
//   - every webhook answered 2xx is stored exactly once, and so is every
//     webhook the gateway had to redeliver because its call got no answer;
//   - the tenant's log is 1..head, no gap, no seq twice;
//   - every reply the API acknowledged reaches the gateway, is marked sent
//     once, and a repeat of its client_id sends nothing again; one still
//     queued when its server was killed is sent by a later one;
//   - the gateway is called for a reply more than once only when a kill cut
//     a send short after the durable "sending" mark and before its outcome
//     was recorded: never twice by one process, never after the socket saw
//     it sent, and at most the outbox's concurrency of such sends per kill.
//     The SMS protocol carries OneBox's message id, so the gateway
//     recognises that repeat (channel.GuardConfig.Idempotent): calls are
//     at least once, and what the gateway delivers is checked to be
//     exactly once per acknowledged reply, under that reply's id;
//   - the agent's socket, resuming with since after every restart, sees
//     seqs 1..head exactly once each, in order, and every event it saw is
//     the one the log holds at that seq.
//
// ONEBOX_CRASH_SEED replays the same kill schedule.
func TestSurvivesRepeatedSIGKILLUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server twenty times")
	}
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("ONEBOX_CRASH_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("ONEBOX_CRASH_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("seed %d (ONEBOX_CRASH_SEED=%d replays this kill schedule)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	// The checks read the whole log and every stored message in one go,
	// well past one session's default request rate, and the gateway posts
	// as fast as the server takes it; the rate limits are not what this
	// test is about.
	t.Setenv("ONEBOX_RATE_SESSION", "off")
	t.Setenv("ONEBOX_RATE_WEBHOOK", "off")

	// A NO_PROXY of the machine's must not let sends skip the proxy.
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	fl := &crashFleet{changed: make(chan struct{})}
	gw := newCrashGateway(t, seed)
	data := t.TempDir()
	gw.proxyFor(t)
	p := start(t, data)
	procs := []*proc{p}
	tm := p.newTeam("Crash Under Load")
	var ch struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if st := p.call("POST", "/api/v1/channels", tm.token, map[string]any{"type": "sms", "name": "SMS", "config": map[string]string{
		"send_url": crashGatewayURL, "auth_token": crashGatewayToken, "webhook_secret": crashHookSecret, "from": crashFrom,
	}}, &ch); st != 201 {
		t.Fatalf("create SMS channel: %d", st)
	}
	fl.up(p.url)

	ld := newCrashLoad(t, fl, tm.token, ch.Channel.ID, seed)
	defer ld.shutdown()
	ld.run()

	// The kills. Each server lives a random while under the load, is
	// killed without warning, and the next one opens the same directory.
	for kill := 1; kill <= crashKills; kill++ {
		life := time.Duration(rng.Int64N(int64(crashMaxLife)))
		select {
		case <-time.After(life):
		case <-ld.ctx.Done():
			t.Fatal("the agent's socket stopped early")
		}
		if t.Failed() {
			t.FailNow()
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		fl.kill()
		gw.proxyFor(t)
		p = start(t, data)
		procs = append(procs, p)
		fl.up(p.url)
		t.Logf("kill %d after %v: %s", kill, life.Round(time.Millisecond), ld.progress())
	}

	// The last server takes some load of its own, then the gateway and the
	// agent finish what they had in hand and stop.
	ld.waitAcks(t, 50)
	ld.stopLoad()
	ld.repeatReplies(t)
	ld.waitSent(t)
	evs := p.events(tm)
	head := uint64(len(evs))
	ld.waitSocket(t, head)
	ld.shutdown()

	stored := crashStoredMessages(t, p, tm.token, ld.conversationIDs())
	ld.check(t, evs, stored, gw)
	// Twenty-one processes' logs, each cut off mid-write by its kill,
	// and none may hold a credential the run used.
	for i, p := range procs {
		logs := p.logs.String()
		for what, secret := range map[string]string{"the gateway's auth_token": crashGatewayToken,
			"the webhook secret": crashHookSecret, "the session token": tm.token, "the operator token": operatorToken} {
			if strings.Contains(logs, secret) {
				t.Errorf("process %d logged %s", i, what)
			}
		}
	}
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// crashFleet says which server process is current: process n is the one
// started after n kills.
type crashFleet struct {
	mu      sync.Mutex
	url     string
	gen     int // the current process; -1 before the first
	killed  int
	changed chan struct{} // closed when a new process is up, or at settle
	settled bool
}

func (f *crashFleet) up(url string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.url != "" {
		f.gen++
	}
	f.url = url
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *crashFleet) kill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.killed++
}

func (f *crashFleet) kills() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.killed
}

// settle says no process will follow the current one.
func (f *crashFleet) settle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.settled {
		f.settled = true
		close(f.changed)
	}
}

func (f *crashFleet) current() (url string, gen int, changed <-chan struct{}, settled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.url, f.gen, f.changed, f.settled
}

// crashGateway is a loopback SMS gateway speaking CONTRACT.md's protocol:
// it checks each send as the real one would, and treats OneBox's message
// id as the idempotency key, as a gateway that deduplicates does: the
// first call with an id delivers the text to the customer, and a repeat
// delivers nothing and is answered with the gateway id given the first
// time. It records every call and, apart, every delivery, so the test can
// tell at-least-once calls from exactly-once delivery. Each server process
// reaches it through an egress
// proxy address of its own (HTTP_PROXY), so every send is put down to the
// process that made it, however late it arrives after that process died.
type crashGateway struct {
	t *testing.T

	mu        sync.Mutex
	srvs      []*httptest.Server // by process
	calls     []crashSend        // every call, repeats included
	delivered []crashSend        // what reached customers: each id's first call
	ids       map[string]string  // OneBox message id -> gateway id
	rng       *rand.Rand
}

// crashGatewayURL is the channel's send_url. Its host never resolves:
// only the proxy reaches it.
const crashGatewayURL = "http://sms-gateway.invalid/v1/sms"

type crashSend struct {
	messageID, to, text string
	process             int
}

func newCrashGateway(t *testing.T, seed uint64) *crashGateway {
	g := &crashGateway{t: t, ids: map[string]string{}, rng: rand.New(rand.NewPCG(seed, 3))}
	t.Cleanup(func() {
		g.mu.Lock()
		srvs := g.srvs
		g.mu.Unlock()
		for _, s := range srvs {
			s.Close()
		}
	})
	return g
}

// proxyFor opens the address the next process sends through and points
// HTTP_PROXY at it for that process.
func (g *crashGateway) proxyFor(t *testing.T) {
	g.mu.Lock()
	process := len(g.srvs)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(process, w, r) }))
	g.srvs = append(g.srvs, srv)
	g.mu.Unlock()
	t.Setenv("HTTP_PROXY", srv.URL)
}

func (g *crashGateway) serve(process int, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Host != "sms-gateway.invalid" || r.URL.Path != "/v1/sms" {
		g.t.Errorf("gateway: unexpected %s %s %s", r.Method, r.Host, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+crashGatewayToken {
		g.t.Errorf("gateway: wrong credentials %q", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var body map[string]string
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["id"] == "" || body["to"] == "" || body["from"] != crashFrom {
		g.t.Errorf("gateway: bad send %v (%v)", body, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// The message is the gateway's from here: if the process dies while
	// it answers, it goes out all the same.
	g.mu.Lock()
	send := crashSend{messageID: body["id"], to: body["to"], text: body["text"], process: process}
	g.calls = append(g.calls, send)
	id, ok := g.ids[body["id"]]
	if !ok {
		id = fmt.Sprintf("gw-%d", len(g.ids)+1)
		g.ids[body["id"]] = id
		g.delivered = append(g.delivered, send)
	}
	latency := time.Duration(g.rng.Int64N(int64(crashGatewayLatency)))
	g.mu.Unlock()
	select {
	case <-time.After(latency):
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q}`, id)
}

// crashLoad is the traffic around the server: the gateway delivering
// customers' messages, the agent replying over the API, and the agent's
// live socket.
type crashLoad struct {
	t       *testing.T
	fl      *crashFleet
	token   string
	channel string
	seed    uint64
	client  *http.Client

	ctx      context.Context // ends at shutdown: the socket stops
	cancel   context.CancelFunc
	stop     chan struct{} // closed to stop starting new calls
	stopOnce sync.Once
	posters  sync.WaitGroup
	sockDone chan struct{}
	shutOnce sync.Once
	nudge    chan struct{} // a webhook was acknowledged or the socket saw an event

	mu         sync.Mutex
	hooks      map[string]*crashHook
	replies    map[string]*crashReply // by client_id
	convs      []string
	handles    map[string]string // conversation id -> contact handle
	throttled  map[int]int       // 429 and 503 answers
	seen       []crashSeen       // what the socket saw, by seq-1
	sentBy     map[string]int    // message id -> process whose socket said sent
	failed     map[string]string // message id -> error, for replies that failed
	welcomes   int               // socket connections made
	slowCloses int               // sockets closed 4008
}

type crashHook struct {
	attempts int
	acked    bool
}

type crashReply struct {
	conversation, text string
	messageID          string
	attempts           int
	ackedBy            int // the process that acknowledged it
}

type crashSeen struct {
	typ, id, status string
}

func newCrashLoad(t *testing.T, fl *crashFleet, token, channel string, seed uint64) *crashLoad {
	ctx, cancel := context.WithCancel(context.Background())
	return &crashLoad{
		t: t, fl: fl, token: token, channel: channel, seed: seed,
		client:    &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		ctx:       ctx,
		cancel:    cancel,
		stop:      make(chan struct{}),
		sockDone:  make(chan struct{}),
		nudge:     make(chan struct{}, 1),
		hooks:     map[string]*crashHook{},
		replies:   map[string]*crashReply{},
		handles:   map[string]string{},
		sentBy:    map[string]int{},
		failed:    map[string]string{},
		throttled: map[int]int{},
	}
}

func (ld *crashLoad) run() {
	for w := 0; w < crashHookPosters; w++ {
		ld.posters.Add(1)
		go ld.postWebhooks(w)
	}
	ld.posters.Add(1)
	go ld.postReplies()
	go ld.follow()
}

func (ld *crashLoad) stopLoad() {
	ld.stopOnce.Do(func() { close(ld.stop) })
	ld.fl.settle()
	ld.posters.Wait()
}

// shutdown ends every goroutine of the load; it is safe to call twice,
// and runs on the way out of a failed test too, so nothing logs after
// the test has ended.
func (ld *crashLoad) shutdown() {
	ld.shutOnce.Do(func() {
		ld.stopLoad()
		ld.cancel()
		<-ld.sockDone
		ld.client.CloseIdleConnections()
	})
}

func (ld *crashLoad) stopping() bool {
	select {
	case <-ld.stop:
		return true
	default:
		return false
	}
}

func (ld *crashLoad) poke() {
	select {
	case ld.nudge <- struct{}{}:
	default:
	}
}

// crashAnswer is how a call made until answered ended.
type crashAnswer struct {
	body     []byte
	status   int
	attempts int
	process  int // the process that answered
	ok       bool
}

// deliver makes one call until the server answers 2xx, as a gateway or
// an app does: a call that got no answer (its server was killed) is made
// again, unchanged, once the next server is up; 429 and 503 wait as told.
func (ld *crashLoad) deliver(what string, call func(base string) (*http.Request, error)) crashAnswer {
	for a := (crashAnswer{attempts: 1}); ; a.attempts++ {
		base, gen, changed, settled := ld.fl.current()
		req, err := call(base)
		if err != nil {
			ld.t.Errorf("%s: %v", what, err)
			return a
		}
		resp, err := ld.client.Do(req)
		if err == nil {
			a.body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		switch {
		case err != nil && settled:
			ld.t.Errorf("%s: the last server did not answer: %v", what, err)
			return a
		case err != nil:
			<-changed
			continue
		}
		a.status, a.process = resp.StatusCode, gen
		switch {
		case resp.StatusCode/100 == 2:
			a.ok = true
			return a
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			ld.mu.Lock()
			ld.throttled[resp.StatusCode]++
			ld.mu.Unlock()
			wait := 100 * time.Millisecond
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-time.After(wait):
			case <-ld.ctx.Done():
				return a
			}
		default:
			ld.t.Errorf("%s: %d %s", what, resp.StatusCode, a.body)
			return a
		}
	}
}

// postWebhooks is one stream of customers' messages from the gateway,
// each signed, each with its own gateway id.
func (ld *crashLoad) postWebhooks(w int) {
	defer ld.posters.Done()
	for i := 0; !ld.stopping(); i++ {
		id := fmt.Sprintf("sms-%d-%d", w, i)
		body, _ := json.Marshal(map[string]any{"id": id, "from": crashContacts[(w+i)%len(crashContacts)],
			"to": crashFrom, "text": "hello " + id, "timestamp": time.Now().Unix()})
		ld.mu.Lock()
		h := &crashHook{}
		ld.hooks[id] = h
		ld.mu.Unlock()
		a := ld.deliver("webhook "+id, func(base string) (*http.Request, error) {
			req, err := http.NewRequest("POST", base+"/webhooks/sms/"+ld.channel, bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(sms.SignatureHeader, sms.Sign(crashHookSecret, body))
			return req, nil
		})
		ld.mu.Lock()
		h.attempts, h.acked = a.attempts, a.ok
		ld.mu.Unlock()
		if !a.ok {
			return
		}
		ld.poke()
	}
}

// postReplies is the agent answering now and then, each reply with its
// own client_id, repeated unchanged when the call got no answer.
func (ld *crashLoad) postReplies() {
	defer ld.posters.Done()
	rng := rand.New(rand.NewPCG(ld.seed, 2))
	for {
		select {
		case <-time.After(time.Duration(rng.Int64N(int64(2 * crashReplyPause)))):
		case <-ld.stop:
			return
		}
		ld.mu.Lock()
		if len(ld.convs) == 0 {
			ld.mu.Unlock()
			continue
		}
		conv := ld.convs[rng.IntN(len(ld.convs))]
		ld.mu.Unlock()
		for n := 1 + rng.IntN(crashReplyBurst); n > 0; n-- {
			clientID := uuid.NewString()
			r := &crashReply{conversation: conv, text: "reply " + clientID}
			ld.mu.Lock()
			ld.replies[clientID] = r
			ld.mu.Unlock()
			id, a := ld.postReply(clientID, r)
			if !a.ok {
				return
			}
			ld.mu.Lock()
			r.messageID, r.attempts, r.ackedBy = id, a.attempts, a.process
			ld.mu.Unlock()
		}
	}
}

// postReply posts one reply until answered; the answer must be the
// message made for its client_id.
func (ld *crashLoad) postReply(clientID string, r *crashReply) (string, crashAnswer) {
	payload, _ := json.Marshal(map[string]string{"client_id": clientID, "text": r.text})
	a := ld.deliver("reply "+clientID, func(base string) (*http.Request, error) {
		req, err := http.NewRequest("POST", base+"/api/v1/conversations/"+r.conversation+"/messages", bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+ld.token)
		return req, nil
	})
	if !a.ok {
		return "", a
	}
	var out struct {
		Message struct {
			ID       string `json:"id"`
			ClientID string `json:"client_id"`
		} `json:"message"`
	}
	if err := json.Unmarshal(a.body, &out); err != nil || out.Message.ID == "" || out.Message.ClientID != clientID {
		ld.t.Errorf("reply %s: answer %s (%v)", clientID, a.body, err)
		a.ok = false
		return "", a
	}
	return out.Message.ID, a
}

// follow is the agent's live socket: connected to each server in turn,
// resuming with since = the last seq it saw, checking as it goes that
// every event is the one after the last.
func (ld *crashLoad) follow() {
	defer close(ld.sockDone)
	var last uint64
	for {
		url, gen, changed, _ := ld.fl.current()
		switch ld.followOne(url, gen, &last) {
		case socketWrong:
			ld.cancel() // what it saw is reported; stop the run
			return
		case socketSlow:
			continue // resume from the same server at once
		}
		select {
		case <-changed:
		case <-ld.ctx.Done():
			return
		}
	}
}

// How a socket ended.
const (
	socketGone  = iota // its server died (or the test is over)
	socketSlow         // closed 4008: the client fell behind and resumes
	socketWrong        // it saw something it must not; reported
)

// followOne reads one server's socket until it ends.
func (ld *crashLoad) followOne(url string, gen int, last *uint64) int {
	dialCtx, cancel := context.WithTimeout(ld.ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dialCtx, strings.Replace(url, "http", "ws", 1)+"/api/v1/ws", nil)
	if err != nil {
		return socketGone // that server is dead already
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": ld.token, "since": *last})
	if err := conn.Write(dialCtx, websocket.MessageText, hello); err != nil {
		return socketGone
	}
	welcomed := false
	for {
		_, b, err := conn.Read(ld.ctx)
		if err != nil {
			switch s := websocket.CloseStatus(err); s {
			case -1:
				return socketGone
			case 4008:
				ld.mu.Lock()
				ld.slowCloses++
				ld.mu.Unlock()
				return socketSlow
			default:
				ld.t.Errorf("socket of process %d closed with %v: %v", gen, s, err)
				return socketWrong
			}
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			ld.t.Errorf("socket frame %s: %v", b, err)
			return socketWrong
		}
		switch {
		case !welcomed:
			if f.Type != "welcome" {
				ld.t.Errorf("process %d answered hello since=%d with %s", gen, *last, b)
				return socketWrong
			}
			if f.Head < *last {
				ld.t.Errorf("process %d says head %d, but the socket had already seen seq %d: acknowledged events were lost", gen, f.Head, *last)
				return socketWrong
			}
			welcomed = true
			ld.mu.Lock()
			ld.welcomes++
			ld.mu.Unlock()
		case f.Type == "reset":
			ld.t.Errorf("process %d reset a socket resuming at %d: %s", gen, *last, b)
			return socketWrong
		case f.Type == "event":
			if f.Event.Seq != *last+1 {
				ld.t.Errorf("socket of process %d got seq %d after %d", gen, f.Event.Seq, *last)
				return socketWrong
			}
			*last = f.Event.Seq
			ld.saw(gen, f.Event)
		}
	}
}

// saw records an event the socket delivered.
func (ld *crashLoad) saw(gen int, e event) {
	var d struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
		Status    string `json:"status"`
		Error     *struct {
			Message string `json:"message"`
		} `json:"error"`
		Contact struct {
			Handle string `json:"handle"`
		} `json:"contact"`
	}
	json.Unmarshal(e.Data, &d)
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ld.seen = append(ld.seen, crashSeen{typ: e.Type, id: d.ID, status: d.Status})
	switch e.Type {
	case "conversation.created":
		if _, ok := ld.handles[d.ID]; !ok {
			ld.convs = append(ld.convs, d.ID)
		}
		ld.handles[d.ID] = d.Contact.Handle
	case "message.updated":
		if d.Direction != "out" {
			break
		}
		switch d.Status {
		case "sent":
			if _, ok := ld.sentBy[d.ID]; !ok {
				ld.sentBy[d.ID] = gen
			}
		case "failed":
			ld.failed[d.ID] = "failed"
			if d.Error != nil {
				ld.failed[d.ID] = d.Error.Message
			}
		}
	}
	ld.poke()
}

func (ld *crashLoad) progress() string {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	acked, replies := 0, 0
	for _, h := range ld.hooks {
		if h.acked {
			acked++
		}
	}
	for _, r := range ld.replies {
		if r.messageID != "" {
			replies++
		}
	}
	return fmt.Sprintf("%d webhooks acknowledged, %d replies acknowledged, %d sent, socket at seq %d",
		acked, replies, len(ld.sentBy), len(ld.seen))
}

// waitFor waits, on the load's own signals, until cond holds.
func (ld *crashLoad) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		ld.mu.Lock()
		ok := cond()
		ld.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ld.nudge:
		case <-ld.ctx.Done():
			t.Fatalf("the agent's socket stopped while waiting for %s", what)
		case <-deadline:
			t.Fatalf("timed out waiting for %s: %s", what, ld.progress())
		}
	}
}

// waitAcks lets the last server take n webhooks of its own.
func (ld *crashLoad) waitAcks(t *testing.T, n int) {
	t.Helper()
	ld.mu.Lock()
	base := 0
	for _, h := range ld.hooks {
		if h.acked {
			base++
		}
	}
	ld.mu.Unlock()
	ld.waitFor(t, "the last server to take webhooks", func() bool {
		acked := 0
		for _, h := range ld.hooks {
			if h.acked {
				acked++
			}
		}
		return acked >= base+n
	})
}

// repeatReplies posts every acknowledged reply again with its client_id:
// each must answer 200 with the message first created, and send nothing.
func (ld *crashLoad) repeatReplies(t *testing.T) {
	t.Helper()
	ld.mu.Lock()
	type rep struct {
		clientID string
		r        crashReply
	}
	var all []rep
	for id, r := range ld.replies {
		all = append(all, rep{id, *r})
	}
	ld.mu.Unlock()
	for _, x := range all {
		if x.r.messageID == "" {
			t.Errorf("reply %s was never acknowledged", x.clientID)
			continue
		}
		id, a := ld.postReply(x.clientID, &x.r)
		if a.ok && (a.status != http.StatusOK || id != x.r.messageID) {
			t.Errorf("repeating reply %s: %d with message %s, want 200 with %s", x.clientID, a.status, id, x.r.messageID)
		}
	}
}

// waitSent waits until the socket has seen every acknowledged reply
// marked sent: the outbox has drained.
func (ld *crashLoad) waitSent(t *testing.T) {
	t.Helper()
	failed := ""
	ld.waitFor(t, "every acknowledged reply to be sent", func() bool {
		for _, r := range ld.replies {
			if msg, ok := ld.failed[r.messageID]; ok {
				failed = r.messageID + ": " + msg
				return true
			}
			if _, ok := ld.sentBy[r.messageID]; !ok {
				return false
			}
		}
		return true
	})
	if failed != "" {
		t.Fatalf("a reply failed: %s", failed)
	}
}

func (ld *crashLoad) waitSocket(t *testing.T, head uint64) {
	t.Helper()
	ld.waitFor(t, fmt.Sprintf("the socket to reach seq %d", head), func() bool { return uint64(len(ld.seen)) >= head })
}

func (ld *crashLoad) conversationIDs() []string {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return slices.Clone(ld.convs)
}

type crashStored struct {
	ID         string `json:"id"`
	ClientID   string `json:"client_id"`
	Direction  string `json:"direction"`
	Text       string `json:"text"`
	Status     string `json:"status"`
	ExternalID string `json:"external_id"`
}

// crashStoredMessages reads every message of the conversations through
// the API, newest page first.
func crashStoredMessages(t *testing.T, p *proc, token string, convs []string) []crashStored {
	t.Helper()
	var list struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	if st := p.call("GET", "/api/v1/conversations?limit=200", token, nil, &list); st != 200 {
		t.Fatalf("list conversations: %d", st)
	}
	var listed []string
	for _, c := range list.Conversations {
		listed = append(listed, c.ID)
	}
	slices.Sort(listed)
	convs = slices.Clone(convs)
	slices.Sort(convs)
	if !slices.Equal(listed, convs) || len(convs) != len(crashContacts) {
		t.Fatalf("conversations listed %v, the socket saw %v created; want one per contact (%d)", listed, convs, len(crashContacts))
	}
	var all []crashStored
	for _, c := range convs {
		before := ""
		for {
			var page struct {
				Messages []crashStored `json:"messages"`
			}
			if st := p.call("GET", "/api/v1/conversations/"+c+"/messages?limit=200&before="+before, token, nil, &page); st != 200 {
				t.Fatalf("messages of %s: %d", c, st)
			}
			all = append(all, page.Messages...)
			if len(page.Messages) < 200 {
				break
			}
			before = page.Messages[0].ID
		}
	}
	return all
}

// check compares what the load was told with what the last server holds
// and what the gateway got, and reports the figures.
func (ld *crashLoad) check(t *testing.T, evs []event, stored []crashStored, gw *crashGateway) {
	t.Helper()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	gw.mu.Lock()
	defer gw.mu.Unlock()

	// The log: 1..head, each seq once, and what the socket saw at each seq
	// is what the log holds there.
	gaps, socketDiffers := 0, 0
	sentUpdates := map[string]int{}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			gaps++
			if gaps <= 5 {
				t.Errorf("log position %d holds seq %d: want %d", i+1, e.Seq, i+1)
			}
			continue
		}
		var d struct {
			ID        string `json:"id"`
			Direction string `json:"direction"`
			Status    string `json:"status"`
		}
		json.Unmarshal(e.Data, &d)
		if e.Type == "message.updated" && d.Direction == "out" && d.Status == "sent" {
			sentUpdates[d.ID]++
		}
		if i < len(ld.seen) && (ld.seen[i] != crashSeen{typ: e.Type, id: d.ID, status: d.Status}) {
			socketDiffers++
			if socketDiffers <= 5 {
				t.Errorf("seq %d: the socket saw %+v, the log holds %s %s %s", e.Seq, ld.seen[i], e.Type, d.ID, d.Status)
			}
		}
	}
	if len(ld.seen) != len(evs) {
		t.Errorf("the socket saw %d events, the log holds %d", len(ld.seen), len(evs))
	}

	// Customers' messages: each acknowledged webhook once, nothing else.
	inbound := map[string]int{}
	outbound := map[string][]crashStored{} // by client_id
	storedIn := 0
	for _, m := range stored {
		switch m.Direction {
		case "in":
			storedIn++
			inbound[m.ExternalID]++
		case "out":
			outbound[m.ClientID] = append(outbound[m.ClientID], m)
		}
	}
	acked, redelivered, lostHooks, dupHooks := 0, 0, 0, 0
	for id, h := range ld.hooks {
		if !h.acked {
			t.Errorf("webhook %s was never acknowledged", id)
			continue
		}
		acked++
		if h.attempts > 1 {
			redelivered++
		}
		switch n := inbound[id]; {
		case n == 0:
			lostHooks++
			if lostHooks <= 5 {
				t.Errorf("acknowledged webhook %s is not stored", id)
			}
		case n > 1:
			dupHooks++
			if dupHooks <= 5 {
				t.Errorf("webhook %s is stored %d times", id, n)
			}
		}
	}
	for id := range inbound {
		if ld.hooks[id] == nil {
			t.Errorf("stored inbound message %q that no webhook carried", id)
		}
	}

	// Replies: each acknowledged one stored once, sent, its gateway id
	// kept; gateway calls only as the design allows.
	callsOf := map[string][]crashSend{}
	for _, c := range gw.calls {
		callsOf[c.messageID] = append(callsOf[c.messageID], c)
	}
	for _, cs := range callsOf {
		// A dead process's call may reach the gateway after its
		// successor's: order them by who made them.
		slices.SortStableFunc(cs, func(a, b crashSend) int { return a.process - b.process })
	}
	uncertainAt := map[int]int{} // process -> sends repeated by a later process
	repliesAcked, repliesRetried, repeatedSends, carried, carriedOnce := 0, 0, 0, 0, 0
	for clientID, r := range ld.replies {
		if r.messageID == "" {
			continue // reported by repeatReplies
		}
		repliesAcked++
		if r.attempts > 1 {
			repliesRetried++
		}
		ms := outbound[clientID]
		if len(ms) != 1 || ms[0].ID != r.messageID {
			t.Errorf("reply %s (message %s) is stored as %+v", clientID, r.messageID, ms)
			continue
		}
		m := ms[0]
		calls := callsOf[m.ID]
		if m.Status != "sent" || len(calls) == 0 || m.ExternalID != gw.ids[m.ID] {
			t.Errorf("reply %s: status %q, external id %q, %d gateway calls (gateway id %q)", m.ID, m.Status, m.ExternalID, len(calls), gw.ids[m.ID])
			continue
		}
		if sentUpdates[m.ID] != 1 {
			t.Errorf("reply %s marked sent %d times in the log", m.ID, sentUpdates[m.ID])
		}
		for i, c := range calls {
			if c.to != ld.handles[r.conversation] || c.text != r.text {
				t.Errorf("reply %s reached the gateway as to=%q text=%q, want %q %q", m.ID, c.to, c.text, ld.handles[r.conversation], r.text)
			}
			if i > 0 && c.process <= calls[i-1].process {
				t.Errorf("reply %s sent twice by process %d", m.ID, c.process)
			}
			if i > 0 {
				repeatedSends++
				uncertainAt[calls[i-1].process]++
			}
		}
		if calls[0].process > r.ackedBy {
			carried++ // still waiting in the outbox when its process was killed
			if len(calls) == 1 {
				carriedOnce++
			}
		}
		if last := calls[len(calls)-1].process; last > ld.sentBy[m.ID] {
			t.Errorf("reply %s sent again by process %d after process %d's socket showed it sent", m.ID, last, ld.sentBy[m.ID])
		}
	}
	for clientID, ms := range outbound {
		if r := ld.replies[clientID]; r == nil || r.messageID == "" {
			t.Errorf("stored reply %+v that no acknowledged call made", ms)
		}
	}
	for process, n := range uncertainAt {
		if n > outbox.DefaultConcurrency {
			t.Errorf("%d sends cut short by kill %d: more than the outbox ever has in flight (%d)", n, process+1, outbox.DefaultConcurrency)
		}
	}
	for id := range callsOf {
		if !slices.ContainsFunc(stored, func(m crashStored) bool { return m.ID == id && m.Direction == "out" }) {
			t.Errorf("the gateway got message %s, which is not a stored reply", id)
		}
	}
	// What the customers got: each acknowledged reply's text delivered
	// once, under its own message id, to its conversation's contact. A
	// resend under another id, or a reply stored twice and sent twice,
	// would be delivered twice whatever the gateway deduplicates.
	deliveriesOf := map[string][]crashSend{} // by text, unique per reply
	for _, d := range gw.delivered {
		deliveriesOf[d.text] = append(deliveriesOf[d.text], d)
	}
	deliveredOnce := 0
	for clientID, r := range ld.replies {
		if r.messageID == "" {
			continue
		}
		ds := deliveriesOf[r.text]
		if len(ds) != 1 || ds[0].messageID != r.messageID || ds[0].to != ld.handles[r.conversation] {
			t.Errorf("reply %s (message %s) reached the customer as %+v, want once as %s to %s",
				clientID, r.messageID, ds, r.messageID, ld.handles[r.conversation])
			continue
		}
		deliveredOnce++
	}
	if len(gw.delivered) != deliveredOnce {
		t.Errorf("the gateway delivered %d texts, %d of them acknowledged replies delivered once", len(gw.delivered), deliveredOnce)
	}

	// A run too light to have put anything at risk proves nothing: it must
	// have had webhooks redelivered, and replies still waiting in the
	// outbox at a kill, to show that both survive one.
	if acked < 200 || redelivered == 0 || repliesAcked < 20 || carried == 0 {
		t.Errorf("too little load to judge: %d webhooks (%d redelivered), %d replies (%d still queued at a kill)",
			acked, redelivered, repliesAcked, carried)
	}
	t.Logf("kills survived: %d (the socket connected %d times, %d of them after a 4008)", ld.fl.kills(), ld.welcomes, ld.slowCloses)
	t.Logf("webhooks: %d acknowledged, %d stored, %d lost, %d duplicates (%d redelivered after a call got no answer)",
		acked, storedIn, lostHooks, dupHooks, redelivered)
	if len(ld.throttled) > 0 {
		t.Logf("answers asking to wait: %v", ld.throttled)
	}
	t.Logf("log: head %d, %d gaps, socket saw %d events (%d differ from the log)", len(evs), gaps, len(ld.seen), socketDiffers)
	t.Logf("replies: %d acknowledged (%d repeated after a call got no answer), %d sent, %d gateway calls for %d messages (%d repeats of a send cut short by a kill, each with its message id)",
		repliesAcked, repliesRetried, len(sentUpdates), len(gw.calls), len(callsOf), repeatedSends)
	t.Logf("delivered to customers: %d, each acknowledged reply exactly once (%d repeated calls dropped by the gateway as already delivered)",
		len(gw.delivered), len(gw.calls)-len(gw.delivered))
	t.Logf("replies still queued when their process was killed: %d, sent by a later one; %d of them with one gateway call, the rest cut short again",
		carried, carriedOnce)
}
