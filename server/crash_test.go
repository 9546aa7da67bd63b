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
	crashKills   = 20
	crashMaxLife = time.Second
	// crashHookPosters is the gateway's streams of webhooks per tenant.
	crashHookPosters = 2
	// crashAgents is the agents of each tenant, each signed in on a
	// device of their own with one live socket.
	crashAgents = 3
	// The agents of a tenant answer one customer at a time with one to
	// crashReplyBurst replies, a crashReplyPause apart on average: about
	// what the channel sends a second, and a conversation's replies go
	// out one by one, so a queue forms now and then and a kill finds it.
	crashReplyPause = 300 * time.Millisecond
	crashReplyBurst = 4
	// crashGatewayLatency is the most the gateway takes to answer a send:
	// a real one takes tens of milliseconds, and that is the window in
	// which a kill leaves a send's outcome unknown.
	crashGatewayLatency = 200 * time.Millisecond
	// crashFrom is the business's number where one tenant is enough.
	crashFrom = "+447700900999"
)

// crashTenants are the teams sharing the server, each with an SMS number
// and gateway account of its own. Every word of their customers' messages
// and their agents' replies carries the team's marker, so a message shown
// to the wrong team is seen for what it is.
var crashTenants = []crashTenantSpec{
	{marker: "north", from: "+447700900901", gatewayToken: "gw-crash-token-north", hookSecret: "gw-crash-webhook-secret-north"},
	{marker: "south", from: "+447700900902", gatewayToken: "gw-crash-token-south", hookSecret: "gw-crash-webhook-secret-south"},
}

// crashContacts are the customers writing in; each is one conversation in
// each tenant. The same people write to both teams, as customers of two
// businesses do: their contacts and conversations must stay apart.
var crashContacts = []string{"+15550100001", "+15550100002", "+15550100003", "+15550100004", "+15550100005", "+15550100006"}

// TestSurvivesRepeatedSIGKILLUnderLoad runs the real binary with two
// tenants under a steady load of signed SMS webhooks, each tenant's agents
// connected and replying, kills it with SIGKILL at random moments,
// restarts it on the same data directory each time, and then checks what
// an operator is promised, for each tenant:
//   - every webhook answered 2xx is stored exactly once, and so is every
//     webhook the gateway had to redeliver because its call got no answer;
//     both tenants' gateways number their messages alike, as two
//     providers may, so a redelivery check that looked at the id alone
//     would drop the other tenant's message and show here as a loss;
//   - the tenant's log is 1..head, no gap, no seq twice;
//   - every reply the API acknowledged reaches the gateway from its own
//     tenant's number, is marked sent once, and a repeat of its client_id
//     sends nothing again; one still queued when its server was killed is
//     sent by a later one;
//   - the gateway is called for a reply more than once only when a kill cut
//     a send short after the durable "sending" mark and before its outcome
//     was recorded: never twice by one process, never after a socket saw
//     it sent, and at most the outbox's concurrency of such sends per kill.
//     The SMS protocol carries OneBox's message id, so the gateway
//     recognises that repeat (channel.GuardConfig.Idempotent): calls are
//     at least once, and what the gateway delivers is checked to be
//     exactly once per acknowledged reply, under that reply's id;
//   - each agent's socket, resuming with since after every restart as the
//     app does, sees seqs 1..head of its own tenant exactly once each, in
//     order; every event it saw is the one the log holds at that seq, and
//     none names an object of the other tenant or carries its text.
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
	// well past one session's default request rate, the gateway posts as
	// fast as the server takes it, and eight people sign in at once from
	// one address; the rate limits are not what this test is about.
	t.Setenv("ONEBOX_RATE_SESSION", "off")
	t.Setenv("ONEBOX_RATE_WEBHOOK", "off")
	t.Setenv("ONEBOX_RATE_SIGNIN", "off")

	// A NO_PROXY of the machine's must not let sends skip the proxy.
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	fl := &crashFleet{changed: make(chan struct{})}
	gw := newCrashGateway(t, seed)
	data := t.TempDir()
	gw.proxyFor(t)
	p := start(t, data)
	procs := []*proc{p}
	run := newCrashRun()
	defer run.shutdown()
	for i, spec := range crashTenants {
		run.add(newCrashLoad(t, run, fl, newCrashTenant(t, p, spec), seed+uint64(i)))
	}
	fl.up(p.url)
	run.start()
	t.Logf("%d tenants with %d agents each set up in %v", len(crashTenants), crashAgents, time.Since(began).Round(time.Millisecond))
	killing := time.Now()

	// The kills. Each server lives a random while under the load, is
	// killed without warning, and the next one opens the same directory.
	for kill := 1; kill <= crashKills; kill++ {
		life := time.Duration(rng.Int64N(int64(crashMaxLife)))
		select {
		case <-time.After(life):
		case <-run.ctx.Done():
			t.Fatal("an agent's socket stopped early")
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
		t.Logf("kill %d after %v: %s", kill, life.Round(time.Millisecond), run.progress())
	}

	t.Logf("%d kills in %v", crashKills, time.Since(killing).Round(time.Millisecond))
	// The last server takes some load of its own, then the gateway and the
	// agents finish what they had in hand and stop.
	for _, ld := range run.loads {
		ld.waitAcks(t, 25)
	}
	for _, ld := range run.loads {
		ld.stopLoad()
	}
	logs := make([][]event, len(run.loads))
	for i, ld := range run.loads {
		ld.repeatReplies(t)
		ld.waitSent(t)
		logs[i] = p.events(team{token: ld.ten.admin})
		ld.waitSockets(t, uint64(len(logs[i])))
	}
	run.shutdown()
	checking := time.Now()
	run.check(t, p, logs, gw)
	t.Logf("checks in %v", time.Since(checking).Round(time.Millisecond))
	// Twenty-one processes' logs, each cut off mid-write by its kill,
	// and none may hold a credential the run used.
	secrets := map[string]string{"the operator token": operatorToken}
	for _, ld := range run.loads {
		ten := ld.ten
		secrets[ten.marker+"'s gateway auth_token"] = ten.gatewayToken
		secrets[ten.marker+"'s webhook secret"] = ten.hookSecret
		secrets[ten.marker+"'s admin session token"] = ten.admin
		for i, a := range ten.agents {
			secrets[fmt.Sprintf("%s's agent %d session token", ten.marker, i+1)] = a.token
		}
	}
	for i, p := range procs {
		logs := p.logs.String()
		for what, secret := range secrets {
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

// crashGateway is a loopback SMS gateway speaking CONTRACT.md's protocol
// for both tenants' accounts: it checks each send as the real one would,
// and treats OneBox's message id as the idempotency key, as a gateway that
// deduplicates does: the first call with an id delivers the text to the
// customer, and a repeat delivers nothing and is answered with the gateway
// id given the first time. It records every call and, apart, every
// delivery, so the test can tell at-least-once calls from exactly-once
// delivery. Each server process reaches it through an egress proxy
// address of its own (HTTP_PROXY), so every send is put down to the
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

// crashGatewayURL is the channels' send_url. Its host never resolves:
// only the proxy reaches it.
const crashGatewayURL = "http://sms-gateway.invalid/v1/sms"

type crashSend struct {
	messageID, from, to, text string
	process                   int
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

// account finds the tenant whose number a send comes from.
func crashAccount(from string) (crashTenantSpec, bool) {
	for _, s := range crashTenants {
		if s.from == from {
			return s, true
		}
	}
	return crashTenantSpec{}, false
}

func (g *crashGateway) serve(process int, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Host != "sms-gateway.invalid" || r.URL.Path != "/v1/sms" {
		g.t.Errorf("gateway: unexpected %s %s %s", r.Method, r.Host, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var body map[string]string
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["id"] == "" || body["to"] == "" {
		g.t.Errorf("gateway: bad send %v (%v)", body, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// A number sends only with its own account's credentials.
	acct, ok := crashAccount(body["from"])
	if !ok || r.Header.Get("Authorization") != "Bearer "+acct.gatewayToken {
		g.t.Errorf("gateway: send from %q with credentials that are not its account's", body["from"])
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	// The message is the gateway's from here: if the process dies while
	// it answers, it goes out all the same.
	g.mu.Lock()
	send := crashSend{messageID: body["id"], from: body["from"], to: body["to"], text: body["text"], process: process}
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

// crashTenantSpec is what the operator knows of a tenant before it exists.
type crashTenantSpec struct {
	marker, from, gatewayToken, hookSecret string
}

// crashTenant is a tenant made for the run: its admin, its SMS channel
// and its agents, each signed in.
type crashTenant struct {
	crashTenantSpec
	admin   string // the admin's session token
	channel string // the SMS channel's id
	agents  []crashAgent
}

type crashAgent struct {
	id, token string
}

func newCrashTenant(t *testing.T, p *proc, spec crashTenantSpec) crashTenant {
	t.Helper()
	tm := p.newTeam("Crash Under Load " + spec.marker)
	ten := crashTenant{crashTenantSpec: spec, admin: tm.token}
	var ch struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if st := p.call("POST", "/api/v1/channels", ten.admin, map[string]any{"type": "sms", "name": "SMS", "config": map[string]string{
		"send_url": crashGatewayURL, "auth_token": spec.gatewayToken, "webhook_secret": spec.hookSecret, "from": spec.from,
	}}, &ch); st != 201 {
		t.Fatalf("create %s's SMS channel: %d", spec.marker, st)
	}
	ten.channel = ch.Channel.ID
	for i := 1; i <= crashAgents; i++ {
		ten.agents = append(ten.agents, crashNewAgent(t, p, ten.admin, fmt.Sprintf("%s agent %d", spec.marker, i)))
	}
	return ten
}

// crashNewAgent adds an agent and signs them in on a device of their own.
func crashNewAgent(t *testing.T, p *proc, admin, name string) crashAgent {
	t.Helper()
	var added struct {
		Agent struct {
			ID string `json:"id"`
		} `json:"agent"`
		AccessKey string `json:"access_key"`
	}
	email := strings.ReplaceAll(name, " ", ".") + "@example.com"
	if st := p.call("POST", "/api/v1/agents", admin, map[string]string{"name": name, "email": email, "role": "agent"}, &added); st != 201 {
		t.Fatalf("add %s: %d", name, st)
	}
	var s struct {
		Token string `json:"token"`
	}
	device := map[string]string{"name": name + "'s phone", "platform": "android"}
	if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": added.AccessKey, "device": device}, &s); st != 201 || s.Token == "" {
		t.Fatalf("sign %s in: %d", name, st)
	}
	return crashAgent{id: added.Agent.ID, token: s.Token}
}

// crashRun is the traffic of every tenant, started and ended together.
type crashRun struct {
	ctx      context.Context // ends at shutdown, or when a socket saw what it must not
	cancel   context.CancelFunc
	loads    []*crashLoad
	shutOnce sync.Once
}

func newCrashRun() *crashRun {
	ctx, cancel := context.WithCancel(context.Background())
	return &crashRun{ctx: ctx, cancel: cancel}
}

func (r *crashRun) add(ld *crashLoad) { r.loads = append(r.loads, ld) }

func (r *crashRun) start() {
	for _, ld := range r.loads {
		ld.run()
	}
}

func (r *crashRun) progress() string {
	var parts []string
	for _, ld := range r.loads {
		parts = append(parts, ld.progress())
	}
	return strings.Join(parts, "; ")
}

// shutdown ends every goroutine of the load; it is safe to call twice,
// and runs on the way out of a failed test too, so nothing logs after
// the test has ended.
func (r *crashRun) shutdown() {
	r.shutOnce.Do(func() {
		for _, ld := range r.loads {
			ld.stopLoad()
		}
		r.cancel()
		for _, ld := range r.loads {
			ld.following.Wait()
			ld.client.CloseIdleConnections()
		}
	})
}

// crashLoad is the traffic around one tenant: the gateway delivering its
// customers' messages, its agents replying over the API, and each agent's
// live socket.
type crashLoad struct {
	t      *testing.T
	fl     *crashFleet
	ten    crashTenant
	seed   uint64
	client *http.Client

	ctx       context.Context    // the run's: the sockets stop when it ends
	cancel    context.CancelFunc // ends the run
	stop      chan struct{}      // closed to stop starting new calls
	stopOnce  sync.Once
	posters   sync.WaitGroup
	following sync.WaitGroup // the sockets
	nudge     chan struct{}  // a webhook was acknowledged or a socket saw an event

	mu        sync.Mutex
	hooks     map[string]*crashHook
	replies   map[string]*crashReply // by client_id
	convs     []string
	handles   map[string]string // conversation id -> contact handle
	throttled map[int]int       // 429 and 503 answers
	sockets   []*crashSocket    // by agent
	sentBy    map[string]int    // message id -> first process whose socket said sent
	failed    map[string]string // message id -> error, for replies that failed
}

type crashHook struct {
	attempts int
	acked    bool
}

type crashReply struct {
	conversation, text string
	agent              int // who wrote it, by index
	messageID          string
	attempts           int
	ackedBy            int // the process that acknowledged it
}

// crashSocket is one agent's live socket, across every process.
type crashSocket struct {
	agent      int
	seen       []crashSeen // what it delivered, by seq-1
	connects   int         // welcomes: the first connection, then resumes
	slowCloses int         // closed 4008
}

func newCrashLoad(t *testing.T, run *crashRun, fl *crashFleet, ten crashTenant, seed uint64) *crashLoad {
	ld := &crashLoad{
		t: t, fl: fl, ten: ten, seed: seed,
		client:    &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		ctx:       run.ctx,
		cancel:    run.cancel,
		stop:      make(chan struct{}),
		nudge:     make(chan struct{}, 1),
		hooks:     map[string]*crashHook{},
		replies:   map[string]*crashReply{},
		handles:   map[string]string{},
		sentBy:    map[string]int{},
		failed:    map[string]string{},
		throttled: map[int]int{},
	}
	for i := range ten.agents {
		ld.sockets = append(ld.sockets, &crashSocket{agent: i})
	}
	return ld
}

func (ld *crashLoad) run() {
	for w := 0; w < crashHookPosters; w++ {
		ld.posters.Add(1)
		go ld.postWebhooks(w)
	}
	ld.posters.Add(1)
	go ld.postReplies()
	for _, s := range ld.sockets {
		ld.following.Add(1)
		go ld.follow(s)
	}
}

func (ld *crashLoad) stopLoad() {
	ld.stopOnce.Do(func() { close(ld.stop) })
	ld.fl.settle()
	ld.posters.Wait()
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

// postWebhooks is one stream of customers' messages from the tenant's
// gateway, each signed, each with its own gateway id. Both tenants'
// streams use the same ids: a provider's id is unique only within its
// account.
func (ld *crashLoad) postWebhooks(w int) {
	defer ld.posters.Done()
	for i := 0; !ld.stopping(); i++ {
		id := fmt.Sprintf("sms-%d-%d", w, i)
		body, _ := json.Marshal(map[string]any{"id": id, "from": crashContacts[(w+i)%len(crashContacts)],
			"to": ld.ten.from, "text": "hello " + ld.ten.marker + " " + id, "timestamp": time.Now().Unix()})
		ld.mu.Lock()
		h := &crashHook{}
		ld.hooks[id] = h
		ld.mu.Unlock()
		a := ld.deliver(ld.ten.marker+" webhook "+id, func(base string) (*http.Request, error) {
			req, err := http.NewRequest("POST", base+"/webhooks/sms/"+ld.ten.channel, bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(sms.SignatureHeader, sms.Sign(ld.ten.hookSecret, body))
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

// postReplies is the tenant's agents answering now and then, one of them
// at a time, each reply with its own client_id, repeated unchanged when
// the call got no answer.
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
		agent := rng.IntN(len(ld.ten.agents))
		for n := 1 + rng.IntN(crashReplyBurst); n > 0; n-- {
			clientID := uuid.NewString()
			r := &crashReply{conversation: conv, agent: agent, text: "reply " + ld.ten.marker + " " + clientID}
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

// postReply posts one reply, as its agent, until answered; the answer
// must be the message made for its client_id.
func (ld *crashLoad) postReply(clientID string, r *crashReply) (string, crashAnswer) {
	payload, _ := json.Marshal(map[string]string{"client_id": clientID, "text": r.text})
	token := ld.ten.agents[r.agent].token
	a := ld.deliver(ld.ten.marker+" reply "+clientID, func(base string) (*http.Request, error) {
		req, err := http.NewRequest("POST", base+"/api/v1/conversations/"+r.conversation+"/messages", bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
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
		ld.t.Errorf("%s reply %s: answer %s (%v)", ld.ten.marker, clientID, a.body, err)
		a.ok = false
		return "", a
	}
	return out.Message.ID, a
}

// follow is an agent's live socket as the app keeps it: connected to each
// server in turn as soon as it says it listens (its store is open by
// then), resuming with since = the last seq
// it saw, checking as it goes that every event is the one after the last.
func (ld *crashLoad) follow(s *crashSocket) {
	defer ld.following.Done()
	var last uint64
	for {
		url, gen, changed, _ := ld.fl.current()
		switch ld.followOne(s, url, gen, &last) {
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
func (ld *crashLoad) followOne(s *crashSocket, url string, gen int, last *uint64) int {
	who := fmt.Sprintf("%s agent %d's socket on process %d", ld.ten.marker, s.agent+1, gen)
	dialCtx, cancel := context.WithTimeout(ld.ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dialCtx, strings.Replace(url, "http", "ws", 1)+"/api/v1/ws", nil)
	if err != nil {
		return socketGone // that server is dead already
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": ld.ten.agents[s.agent].token, "since": *last})
	if err := conn.Write(dialCtx, websocket.MessageText, hello); err != nil {
		return socketGone
	}
	welcomed := false
	for {
		_, b, err := conn.Read(ld.ctx)
		if err != nil {
			switch code := websocket.CloseStatus(err); code {
			case -1:
				return socketGone
			case 4008:
				ld.mu.Lock()
				s.slowCloses++
				ld.mu.Unlock()
				return socketSlow
			default:
				ld.t.Errorf("%s closed with %v: %v", who, code, err)
				return socketWrong
			}
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			ld.t.Errorf("%s: frame %s: %v", who, b, err)
			return socketWrong
		}
		switch {
		case !welcomed:
			if f.Type != "welcome" {
				ld.t.Errorf("%s: hello since=%d answered with %s", who, *last, b)
				return socketWrong
			}
			if f.Head < *last {
				ld.t.Errorf("%s: head %d, but the socket had already seen seq %d: acknowledged events were lost", who, f.Head, *last)
				return socketWrong
			}
			welcomed = true
			ld.mu.Lock()
			s.connects++
			ld.mu.Unlock()
		case f.Type == "reset":
			ld.t.Errorf("%s: reset while resuming at %d: %s", who, *last, b)
			return socketWrong
		case f.Type == "event":
			if f.Event.Seq != *last+1 {
				ld.t.Errorf("%s: seq %d after %d", who, f.Event.Seq, *last)
				return socketWrong
			}
			*last = f.Event.Seq
			ld.saw(s, gen, f.Event)
		}
	}
}

// crashSeen is what the checks keep of an event: what it is, and every
// object it names, to match against the log and against the other
// tenant's objects.
type crashSeen struct {
	seq                                    uint64
	typ, id, status, text                  string
	conversation, channel, contact, author string
}

// names are the ids of every object the event names.
func (s crashSeen) names() []string {
	var out []string
	for _, id := range []string{s.id, s.conversation, s.channel, s.contact, s.author} {
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

// crashData is what the checks read of an event's object, whichever kind
// it is.
type crashData struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	Direction      string `json:"direction"`
	Status         string `json:"status"`
	Text           string `json:"text"`
	Error          *struct {
		Message string `json:"message"`
	} `json:"error"`
	Channel struct {
		ID string `json:"id"`
	} `json:"channel"`
	Contact struct {
		ID     string `json:"id"`
		Handle string `json:"handle"`
	} `json:"contact"`
	Author struct {
		ID string `json:"id"`
	} `json:"author"`
}

func crashSeenOf(e event) (crashSeen, crashData) {
	var d crashData
	json.Unmarshal(e.Data, &d)
	return crashSeen{seq: e.Seq, typ: e.Type, id: d.ID, status: d.Status, text: d.Text,
		conversation: d.ConversationID, channel: d.Channel.ID, contact: d.Contact.ID, author: d.Author.ID}, d
}

// saw records an event a socket delivered.
func (ld *crashLoad) saw(s *crashSocket, gen int, e event) {
	seen, d := crashSeenOf(e)
	ld.mu.Lock()
	defer ld.mu.Unlock()
	s.seen = append(s.seen, seen)
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
			// Sockets see it in turn; a late one may read what a dead
			// process sent before its successor's news reached another.
			if first, ok := ld.sentBy[d.ID]; !ok || gen < first {
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
	var at []string
	for _, s := range ld.sockets {
		at = append(at, strconv.Itoa(len(s.seen)))
	}
	return fmt.Sprintf("%s %d webhooks, %d replies acknowledged, %d sent, sockets at seq %s",
		ld.ten.marker, acked, replies, len(ld.sentBy), strings.Join(at, "/"))
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
			t.Fatalf("an agent's socket stopped while waiting for %s", what)
		case <-deadline:
			t.Fatalf("timed out waiting for %s: %s", what, ld.progress())
		}
	}
}

// waitAcks lets the last server take n webhooks of its own.
func (ld *crashLoad) waitAcks(t *testing.T, n int) {
	t.Helper()
	ld.mu.Lock()
	base := ld.ackedLocked()
	ld.mu.Unlock()
	ld.waitFor(t, ld.ten.marker+"'s webhooks to reach the last server", func() bool { return ld.ackedLocked() >= base+n })
}

func (ld *crashLoad) ackedLocked() int {
	acked := 0
	for _, h := range ld.hooks {
		if h.acked {
			acked++
		}
	}
	return acked
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
			t.Errorf("%s reply %s was never acknowledged", ld.ten.marker, x.clientID)
			continue
		}
		id, a := ld.postReply(x.clientID, &x.r)
		if a.ok && (a.status != http.StatusOK || id != x.r.messageID) {
			t.Errorf("repeating %s reply %s: %d with message %s, want 200 with %s", ld.ten.marker, x.clientID, a.status, id, x.r.messageID)
		}
	}
}

// waitSent waits until a socket has seen every acknowledged reply marked
// sent: the outbox has drained.
func (ld *crashLoad) waitSent(t *testing.T) {
	t.Helper()
	failed := ""
	ld.waitFor(t, "every acknowledged "+ld.ten.marker+" reply to be sent", func() bool {
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
		t.Fatalf("a %s reply failed: %s", ld.ten.marker, failed)
	}
}

// waitSockets waits until every agent's socket has reached head.
func (ld *crashLoad) waitSockets(t *testing.T, head uint64) {
	t.Helper()
	ld.waitFor(t, fmt.Sprintf("%s's sockets to reach seq %d", ld.ten.marker, head), func() bool {
		for _, s := range ld.sockets {
			if uint64(len(s.seen)) < head {
				return false
			}
		}
		return true
	})
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
// the API, newest page first; the tenant must list exactly those.
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
		t.Fatalf("conversations listed %v, seen created %v; want one per contact (%d)", listed, convs, len(crashContacts))
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

// crashFigures are what one tenant's checks counted.
type crashFigures struct {
	kills                                    int
	acked, storedIn, lost, dups, redelivered int
	heads                                    []int // by tenant
	gaps, sockets, socketDiffers, foreign    int
	resumes, slowCloses                      []int // by socket
	repliesAcked, repliesRetried, sent       int
	calls, callMessages, repeatedSends       int
	delivered, carried, carriedOnce          int
	uncertainAt                              map[int]int // process -> its sends repeated by a later one
}

func (f *crashFigures) add(o crashFigures) {
	f.acked += o.acked
	f.storedIn += o.storedIn
	f.lost += o.lost
	f.dups += o.dups
	f.redelivered += o.redelivered
	f.heads = append(f.heads, o.heads...)
	f.gaps += o.gaps
	f.sockets += o.sockets
	f.socketDiffers += o.socketDiffers
	f.foreign += o.foreign
	f.resumes = append(f.resumes, o.resumes...)
	f.slowCloses = append(f.slowCloses, o.slowCloses...)
	f.repliesAcked += o.repliesAcked
	f.repliesRetried += o.repliesRetried
	f.sent += o.sent
	f.calls += o.calls
	f.callMessages += o.callMessages
	f.repeatedSends += o.repeatedSends
	f.delivered += o.delivered
	f.carried += o.carried
	f.carriedOnce += o.carriedOnce
	for p, n := range o.uncertainAt {
		f.uncertainAt[p] += n
	}
}

// report prints the figures under a heading: a tenant's marker, or both.
func (f crashFigures) report(t *testing.T, who string) {
	t.Helper()
	t.Logf("%s: webhooks %d acknowledged, %d stored, %d lost, %d duplicates (%d redelivered after a call got no answer)",
		who, f.acked, f.storedIn, f.lost, f.dups, f.redelivered)
	t.Logf("%s: log head %v, %d gaps; %d agents' sockets each saw its tenant's 1..head once, in order (%d events differ from the log, %d name the other tenant's objects); resumes with since per socket %v (after a 4008: %v)",
		who, f.heads, f.gaps, f.sockets, f.socketDiffers, f.foreign, f.resumes, f.slowCloses)
	t.Logf("%s: replies %d acknowledged (%d repeated after a call got no answer), %d sent, %d gateway calls for %d messages (%d repeats of a send cut short by a kill, each with its message id)",
		who, f.repliesAcked, f.repliesRetried, f.sent, f.calls, f.callMessages, f.repeatedSends)
	t.Logf("%s: delivered to customers %d, each acknowledged reply exactly once (%d repeated calls dropped by the gateway as already delivered); %d replies still queued when their process was killed, sent by a later one, %d of them with one gateway call, the rest cut short again",
		who, f.delivered, f.calls-f.delivered, f.carried, f.carriedOnce)
}

// check compares, for every tenant, what its load was told with what the
// last server holds and what the gateway got, checks that no tenant saw
// the other's objects, and reports the figures.
func (r *crashRun) check(t *testing.T, p *proc, logs [][]event, gw *crashGateway) {
	t.Helper()
	stored := make([][]crashStored, len(r.loads))
	for i, ld := range r.loads {
		stored[i] = crashStoredMessages(t, p, ld.ten.admin, ld.conversationIDs())
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	seens := make([][]crashSeen, len(r.loads))
	datas := make([][]crashData, len(r.loads))
	owned := make([]map[string]bool, len(r.loads))
	for i, ld := range r.loads {
		seens[i], datas[i] = crashDecode(logs[i])
		owned[i] = crashOwned(ld.ten, seens[i])
	}
	total := crashFigures{kills: r.loads[0].fl.kills(), uncertainAt: map[int]int{}}
	for i, ld := range r.loads {
		foreign := map[string]bool{}
		for j := range r.loads {
			if j != i {
				for id := range owned[j] {
					foreign[id] = true
				}
			}
		}
		f := ld.check(t, seens[i], datas[i], stored[i], gw, foreign)
		if f.acked < 100 || f.repliesAcked < 10 {
			t.Errorf("too little load on %s to judge: %d webhooks, %d replies", ld.ten.marker, f.acked, f.repliesAcked)
		}
		if len(ld.throttled) > 0 {
			t.Logf("%s: answers asking to wait: %v", ld.ten.marker, ld.throttled)
		}
		f.report(t, ld.ten.marker)
		total.add(f)
	}
	for process, n := range total.uncertainAt {
		if n > outbox.DefaultConcurrency {
			t.Errorf("%d sends cut short by kill %d: more than the outbox ever has in flight (%d)", n, process+1, outbox.DefaultConcurrency)
		}
	}
	if len(gw.calls) != total.calls || len(gw.delivered) != total.delivered {
		t.Errorf("the gateway got %d calls and delivered %d texts; the tenants' replies account for %d and %d",
			len(gw.calls), len(gw.delivered), total.calls, total.delivered)
	}
	// A run too light to have put anything at risk proves nothing: it must
	// have had webhooks redelivered, and replies still waiting in the
	// outbox at a kill, to show that both survive one.
	if total.redelivered == 0 || total.carried == 0 {
		t.Errorf("too little load to judge: %d webhooks redelivered, %d replies still queued at a kill", total.redelivered, total.carried)
	}
	t.Logf("kills survived: %d", total.kills)
	total.report(t, fmt.Sprintf("all %d tenants", len(r.loads)))
}

// crashDecode reads a log once for every check.
func crashDecode(evs []event) ([]crashSeen, []crashData) {
	seens, datas := make([]crashSeen, len(evs)), make([]crashData, len(evs))
	for i, e := range evs {
		seens[i], datas[i] = crashSeenOf(e)
	}
	return seens, datas
}

// crashOwned is every id a tenant's log names, with its channel and
// agents: what no other tenant may ever see.
func crashOwned(ten crashTenant, log []crashSeen) map[string]bool {
	owned := map[string]bool{ten.channel: true}
	for _, a := range ten.agents {
		owned[a.id] = true
	}
	for _, s := range log {
		for _, id := range s.names() {
			owned[id] = true
		}
	}
	return owned
}

// alien says what in an event a tenant's socket must not have seen: an
// object of another tenant, a conversation on another channel, or a
// message that is not one of its own customers' or agents'.
func (ld *crashLoad) alien(s crashSeen, foreign map[string]bool) string {
	for _, id := range s.names() {
		if foreign[id] {
			return "the other tenant's object " + id
		}
	}
	switch {
	case strings.HasPrefix(s.typ, "conversation.") && s.channel != ld.ten.channel:
		return "a conversation of channel " + s.channel
	case strings.HasPrefix(s.typ, "message.") && !strings.HasPrefix(s.text, "hello "+ld.ten.marker+" ") &&
		!strings.HasPrefix(s.text, "reply "+ld.ten.marker+" "):
		return fmt.Sprintf("the text %q", s.text)
	}
	return ""
}

// check is one tenant's part: its log, its sockets, its webhooks and its
// replies. The caller holds the gateway's lock.
func (ld *crashLoad) check(t *testing.T, log []crashSeen, data []crashData, stored []crashStored, gw *crashGateway, foreign map[string]bool) crashFigures {
	t.Helper()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	f := crashFigures{heads: []int{len(log)}, sockets: len(ld.sockets), uncertainAt: map[int]int{}}
	sentUpdates := ld.checkLog(t, log, data, &f)
	ld.checkSockets(t, log, foreign, &f)
	ld.checkWebhooks(t, stored, &f)
	ld.checkReplies(t, stored, sentUpdates, gw, &f)
	return f
}

// checkLog: 1..head, each seq once; it returns how often each reply was
// marked sent.
func (ld *crashLoad) checkLog(t *testing.T, log []crashSeen, data []crashData, f *crashFigures) map[string]int {
	t.Helper()
	sentUpdates := map[string]int{}
	for i, e := range log {
		if e.seq != uint64(i+1) {
			f.gaps++
			if f.gaps <= 5 {
				t.Errorf("%s log position %d holds seq %d: want %d", ld.ten.marker, i+1, e.seq, i+1)
			}
			continue
		}
		if d := data[i]; e.typ == "message.updated" && d.Direction == "out" && d.Status == "sent" {
			sentUpdates[d.ID]++
		}
	}
	return sentUpdates
}

// checkSockets: each agent's socket saw exactly the log, seq by seq, and
// nothing of the other tenant.
func (ld *crashLoad) checkSockets(t *testing.T, log []crashSeen, foreign map[string]bool, f *crashFigures) {
	t.Helper()
	for _, s := range ld.sockets {
		who := fmt.Sprintf("%s agent %d's socket", ld.ten.marker, s.agent+1)
		f.resumes = append(f.resumes, s.connects-1)
		f.slowCloses = append(f.slowCloses, s.slowCloses)
		if len(s.seen) != len(log) {
			t.Errorf("%s saw %d events, the log holds %d", who, len(s.seen), len(log))
		}
		for i, seen := range s.seen {
			if why := ld.alien(seen, foreign); why != "" {
				f.foreign++
				if f.foreign <= 5 {
					t.Errorf("%s got seq %d (%s) naming %s", who, seen.seq, seen.typ, why)
				}
			}
			if i >= len(log) {
				continue
			}
			if want := log[i]; seen != want || seen.seq != uint64(i+1) {
				f.socketDiffers++
				if f.socketDiffers <= 5 {
					t.Errorf("%s: seq %d saw %+v, the log holds %+v", who, i+1, seen, want)
				}
			}
		}
	}
}

// checkWebhooks: each acknowledged webhook stored once, nothing else.
func (ld *crashLoad) checkWebhooks(t *testing.T, stored []crashStored, f *crashFigures) {
	t.Helper()
	inbound := map[string]int{}
	for _, m := range stored {
		if m.Direction == "in" {
			f.storedIn++
			inbound[m.ExternalID]++
		}
	}
	for id, h := range ld.hooks {
		if !h.acked {
			t.Errorf("%s webhook %s was never acknowledged", ld.ten.marker, id)
			continue
		}
		f.acked++
		if h.attempts > 1 {
			f.redelivered++
		}
		switch n := inbound[id]; {
		case n == 0:
			f.lost++
			if f.lost <= 5 {
				t.Errorf("acknowledged %s webhook %s is not stored", ld.ten.marker, id)
			}
		case n > 1:
			f.dups++
			if f.dups <= 5 {
				t.Errorf("%s webhook %s is stored %d times", ld.ten.marker, id, n)
			}
		}
	}
	for id := range inbound {
		if ld.hooks[id] == nil {
			t.Errorf("%s stored inbound message %q that no webhook carried", ld.ten.marker, id)
		}
	}
}

// checkReplies: each acknowledged reply stored once, sent from the
// tenant's own number, its gateway id kept, gateway calls only as the
// design allows, and delivered to its customer once.
func (ld *crashLoad) checkReplies(t *testing.T, stored []crashStored, sentUpdates map[string]int, gw *crashGateway, f *crashFigures) {
	t.Helper()
	outbound := map[string][]crashStored{} // by client_id
	ours := map[string]bool{}              // stored reply ids
	for _, m := range stored {
		if m.Direction == "out" {
			outbound[m.ClientID] = append(outbound[m.ClientID], m)
			ours[m.ID] = true
		}
	}
	callsOf := map[string][]crashSend{}
	for _, c := range gw.calls {
		if c.from != ld.ten.from {
			if ours[c.messageID] {
				t.Errorf("%s reply %s was sent from another tenant's number %s", ld.ten.marker, c.messageID, c.from)
			}
			continue
		}
		f.calls++
		if !ours[c.messageID] {
			t.Errorf("the gateway got message %s from %s's number, which is not one of its stored replies", c.messageID, ld.ten.marker)
		}
		callsOf[c.messageID] = append(callsOf[c.messageID], c)
	}
	f.callMessages = len(callsOf)
	for _, cs := range callsOf {
		// A dead process's call may reach the gateway after its
		// successor's: order them by who made them.
		slices.SortStableFunc(cs, func(a, b crashSend) int { return a.process - b.process })
	}
	for clientID, r := range ld.replies {
		if r.messageID == "" {
			continue // reported by repeatReplies
		}
		f.repliesAcked++
		if r.attempts > 1 {
			f.repliesRetried++
		}
		ms := outbound[clientID]
		if len(ms) != 1 || ms[0].ID != r.messageID {
			t.Errorf("%s reply %s (message %s) is stored as %+v", ld.ten.marker, clientID, r.messageID, ms)
			continue
		}
		ld.checkCalls(t, r, ms[0], callsOf[ms[0].ID], sentUpdates, gw, f)
	}
	for clientID, ms := range outbound {
		if r := ld.replies[clientID]; r == nil || r.messageID == "" {
			t.Errorf("%s stored reply %+v that no acknowledged call made", ld.ten.marker, ms)
		}
	}
	ld.checkDelivered(t, gw, f)
}

// checkCalls: one reply's gateway calls.
func (ld *crashLoad) checkCalls(t *testing.T, r *crashReply, m crashStored, calls []crashSend, sentUpdates map[string]int, gw *crashGateway, f *crashFigures) {
	t.Helper()
	if m.Status != "sent" || len(calls) == 0 || m.ExternalID != gw.ids[m.ID] {
		t.Errorf("%s reply %s: status %q, external id %q, %d gateway calls (gateway id %q)", ld.ten.marker, m.ID, m.Status, m.ExternalID, len(calls), gw.ids[m.ID])
		return
	}
	f.sent++
	if sentUpdates[m.ID] != 1 {
		t.Errorf("%s reply %s marked sent %d times in the log", ld.ten.marker, m.ID, sentUpdates[m.ID])
	}
	for i, c := range calls {
		if c.to != ld.handles[r.conversation] || c.text != r.text {
			t.Errorf("%s reply %s reached the gateway as to=%q text=%q, want %q %q", ld.ten.marker, m.ID, c.to, c.text, ld.handles[r.conversation], r.text)
		}
		if i > 0 && c.process <= calls[i-1].process {
			t.Errorf("%s reply %s sent twice by process %d", ld.ten.marker, m.ID, c.process)
		}
		if i > 0 {
			f.repeatedSends++
			f.uncertainAt[calls[i-1].process]++
		}
	}
	if calls[0].process > r.ackedBy {
		f.carried++ // still waiting in the outbox when its process was killed
		if len(calls) == 1 {
			f.carriedOnce++
		}
	}
	if last := calls[len(calls)-1].process; last > ld.sentBy[m.ID] {
		t.Errorf("%s reply %s sent again by process %d after process %d's socket showed it sent", ld.ten.marker, m.ID, last, ld.sentBy[m.ID])
	}
}

// checkDelivered: what the tenant's customers got: each acknowledged
// reply's text delivered once, under its own message id, from the
// tenant's number to its conversation's contact. A resend under another
// id, or a reply stored twice and sent twice, would be delivered twice
// whatever the gateway deduplicates.
func (ld *crashLoad) checkDelivered(t *testing.T, gw *crashGateway, f *crashFigures) {
	t.Helper()
	deliveriesOf := map[string][]crashSend{} // by text, unique per reply
	ofTenant := 0
	for _, d := range gw.delivered {
		if d.from == ld.ten.from {
			ofTenant++
			deliveriesOf[d.text] = append(deliveriesOf[d.text], d)
		}
	}
	for clientID, r := range ld.replies {
		if r.messageID == "" {
			continue
		}
		ds := deliveriesOf[r.text]
		if len(ds) != 1 || ds[0].messageID != r.messageID || ds[0].to != ld.handles[r.conversation] {
			t.Errorf("%s reply %s (message %s) reached the customer as %+v, want once as %s to %s",
				ld.ten.marker, clientID, r.messageID, ds, r.messageID, ld.handles[r.conversation])
			continue
		}
		f.delivered++
	}
	if ofTenant != f.delivered {
		t.Errorf("the gateway delivered %d texts from %s's number, %d of them acknowledged replies delivered once", ofTenant, ld.ten.marker, f.delivered)
	}
}
