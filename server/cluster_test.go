package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
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
	"github.com/onebox/onebox/internal/pgtest"
)

// Shape of the three-process run. The load moves from one phase to the
// next on counts of acknowledged webhooks, not on time.
const (
	clusterProcs        = 3
	clusterSockets      = 12 // spread over the processes and the identities
	clusterHookPosters  = 3
	clusterAcksToRevoke = 60  // webhooks acknowledged before the revocation
	clusterAcksToKill   = 140 // ... before the SIGKILL
	clusterAcksAfter    = 80  // ... after it, taken by the survivors
	clusterRevokeWithin = time.Second
	// clusterCatchUp is the processes' head-check period: with no call
	// made after the SIGKILL, every socket must still reach the head
	// within clusterQuietWithin.
	clusterCatchUp      = time.Second
	clusterQuietWithin  = 2*clusterCatchUp + 2*time.Second
	clusterHookSecret   = "cluster-webhook-secret"
	clusterGatewayToken = "cluster-gateway-token"
)

// TestThreeProcessesShareOneStream runs three real processes on one
// PostgreSQL database and one NATS server, with agents' sockets spread over
// them, under a steady load of signed SMS webhooks and agents' replies and
// notes posted to all three at once. It checks what a team relies on when
// the service runs on several machines:
//   - every socket, whatever process holds it, gets the tenant's events
//     from its since to the head exactly once each, in order, replay then
//     live, each equal to what the log holds at that seq;
//   - revoking an agent's key through one process closes that agent's
//     sockets on every process with 4401 within a second, while the other
//     agents' sockets keep receiving;
//   - a process killed with SIGKILL loses nothing: its sockets resume on
//     another process from the last seq they saw, every webhook answered
//     2xx (by any process, the killed one included) is stored exactly once,
//     and the log has no gap;
//   - right after the SIGKILL, with no further call made, every socket
//     reaches the head within a bound: an event the killed process
//     committed but never published is found by the survivors' head
//     checks, not by later traffic showing a gap.
func TestThreeProcessesShareOneStream(t *testing.T) {
	began := time.Now()
	gw := newClusterGateway(t)
	env := append(pgEnv(pgtest.DSN(t), t.TempDir()),
		"ONEBOX_NATS_URL="+startNATS(t),
		// The checks read the whole log many times over, and the gateway
		// posts as fast as the processes take it: rate limits are not what
		// this test is about.
		"ONEBOX_RATE_SESSION=off", "ONEBOX_RATE_WEBHOOK=off",
		"ONEBOX_CATCH_UP_INTERVAL="+clusterCatchUp.String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &cluster{
		t:       t,
		ctx:     ctx,
		client:  &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		stop:    make(chan struct{}),
		nudge:   make(chan struct{}, 1),
		hooks:   map[string]*clusterHook{},
		replies: map[string]*clusterReply{},
	}
	defer c.client.CloseIdleConnections()
	for range clusterProcs {
		// At debug level a process logs taking a job's lease.
		c.procs = append(c.procs, startEnv(t, env, t.TempDir(), "--log-level", "debug"))
	}
	c.dead = make([]bool, clusterProcs)
	p0 := c.procs[0]

	// The team, through process 1: an admin, two agents who answer, and
	// one whose key is revoked half way.
	adminToken, channel := clusterTeam(t, p0, "Three Processes", gw.srv.URL+"/v1/sms")
	admin := clusterIdentity{name: "admin", token: adminToken}
	c.channel = channel
	idents := []clusterIdentity{admin, clusterAgent(t, p0, admin.token, "Ada"), clusterAgent(t, p0, admin.token, "Bo"), clusterAgent(t, p0, admin.token, "Revoked Rae")}
	revoked := idents[3]

	// One customer message per contact makes the conversations the agents
	// answer in; the sockets then open on a log that already has a past.
	for i, from := range crashContacts {
		if !c.postHook(i, fmt.Sprintf("seed-%d", i), from) {
			t.Fatalf("seed webhook %d was not acknowledged", i)
		}
	}
	c.convs = clusterConversations(t, p0, admin.token)
	if len(c.convs) != len(crashContacts) {
		t.Fatalf("%d conversations after the seed, want %d", len(c.convs), len(crashContacts))
	}
	seedHead := uint64(len(clusterLog(t, p0, admin.token)))

	var readers sync.WaitGroup
	defer func() { cancel(); readers.Wait() }()
	open := func(i int, who clusterIdentity, since uint64) {
		s := &clusterSocket{n: i, who: who, since: since, last: since, proc: i % clusterProcs, welcomed: make(chan struct{})}
		c.mu.Lock()
		c.socks = append(c.socks, s)
		c.mu.Unlock()
		readers.Add(1)
		go func() {
			defer readers.Done()
			c.follow(s)
		}()
		select {
		case <-s.welcomed:
		case <-time.After(15 * time.Second):
			t.Fatalf("socket %d on process %d was not welcomed", s.n, s.proc+1)
		}
	}
	for i := range clusterSockets {
		// Socket i belongs to identity i%4 and starts on process i%3, so
		// every identity has a socket on every process. Half replay the
		// whole log, the others resume from part way or from the head.
		var since uint64
		switch i % 4 {
		case 1:
			since = seedHead / 2
		case 3:
			since = seedHead
		}
		if i%2 == 0 {
			since = 0
		}
		open(i, idents[i%4], since)
	}

	// The load: the gateway delivering customers' messages and the agents
	// answering (replies and internal notes), each call to the next process
	// in turn.
	var posters sync.WaitGroup
	for w := range clusterHookPosters {
		posters.Add(1)
		go func() {
			defer posters.Done()
			for i := 0; !c.stopping(); i++ {
				c.quiet.RLock()
				ok := c.postHook(w+i, fmt.Sprintf("sms-%d-%d", w, i), crashContacts[(w+i)%len(crashContacts)])
				c.quiet.RUnlock()
				if !ok {
					return
				}
			}
		}()
	}
	for k, who := range idents[:3] {
		posters.Add(1)
		go func() {
			defer posters.Done()
			for i := 0; !c.stopping(); i++ {
				c.quiet.RLock()
				ok := c.postReply(k+i, who, c.convs[(k+i)%len(c.convs)], i%3 == 2)
				c.quiet.RUnlock()
				if !ok {
					return
				}
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() {
		close(c.stop)
		posters.Wait()
	})
	defer stopLoad()

	// Revocation, through process 3, while the load runs.
	c.waitFor("webhooks before the revocation", func() bool { return c.ackedLocked() >= clusterAcksToRevoke })
	c.mu.Lock()
	c.revoked = revoked.name
	c.mu.Unlock()
	revokeAt := time.Now()
	if st := c.procs[2].call("DELETE", "/api/v1/agents/"+revoked.agentID+"/keys/"+revoked.keyID, admin.token, nil, nil); st != 204 {
		t.Fatalf("revoke %s's key: %d", revoked.name, st)
	}
	answered := time.Since(revokeAt)
	c.waitFor("the revoked agent's sockets to close", func() bool {
		for _, s := range c.socks {
			if s.who.name == revoked.name && s.closedAt.IsZero() {
				return false
			}
		}
		return true
	})
	var revokeLatency []time.Duration
	revokeHead := uint64(0)
	c.mu.Lock()
	for _, s := range c.socks {
		if s.who.name != revoked.name {
			continue
		}
		d := s.closedAt.Sub(revokeAt)
		revokeLatency = append(revokeLatency, d)
		if s.closeCode != 4401 || d > clusterRevokeWithin {
			t.Errorf("socket %d of the revoked agent on process %d closed with %d after %v, want 4401 within %v",
				s.n, s.proc+1, s.closeCode, d.Round(time.Millisecond), clusterRevokeWithin)
		}
		revokeHead = max(revokeHead, s.last)
	}
	c.mu.Unlock()
	for i, p := range c.procs {
		if st := p.call("GET", "/api/v1/conversations", revoked.token, nil, nil); st != 401 {
			t.Errorf("process %d answers the revoked session with %d, want 401", i+1, st)
		}
		if code := clusterHelloCode(t, p, revoked.token); code != 4401 {
			t.Errorf("process %d closes a new socket of the revoked session with %d, want 4401", i+1, code)
		}
	}

	// Late joiners, one per process, switch from replay to live while the
	// load runs: from the start, from half way, and from the head.
	for k, who := range idents[:3] {
		head := uint64(len(clusterLog(t, p0, admin.token)))
		open(clusterSockets+k, who, []uint64{0, head / 2, head}[k])
	}

	// The SIGKILL: a process that does not hold the outbox, so replies go
	// on being sent while its sockets and callers move elsewhere.
	c.waitFor("webhooks before the kill", func() bool { return c.ackedLocked() >= clusterAcksToKill })
	holder := slices.IndexFunc(c.procs, clusterHoldsOutbox)
	if holder < 0 {
		t.Fatalf("no process says it holds the outbox, yet %d replies were acknowledged", c.answered())
	}
	victim := 1
	if holder == 1 {
		victim = 2
	}
	c.mu.Lock()
	c.dead[victim] = true
	moved := map[*clusterSocket]int{} // -> connections made before the kill
	for _, s := range c.socks {
		if s.proc == victim && s.closedAt.IsZero() {
			moved[s] = s.connects
		}
	}
	ackedByVictim := 0
	for _, h := range c.hooks {
		if h.acked && h.ackedBy == victim {
			ackedByVictim++
		}
	}
	c.mu.Unlock()
	killAt := time.Now()
	if err := c.procs[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.procs[victim].done
	// No call starts until every socket has reached the head: once the
	// calls in flight at the kill are answered (by the survivors), no
	// later event may reveal a hole the killed process left behind.
	c.quiet.Lock()
	c.waitFor("the killed process's sockets to resume elsewhere", func() bool {
		for s, n := range moved {
			if s.proc == victim || s.connects <= n {
				return false
			}
		}
		return true
	})
	resumedIn := time.Since(killAt)
	quietHead := uint64(len(clusterLog(t, p0, admin.token)))
	quietAt := time.Now()
	c.waitFor(fmt.Sprintf("every open socket to reach seq %d with no call made", quietHead), func() bool {
		for _, s := range c.socks {
			if s.closedAt.IsZero() && s.last < quietHead {
				return false
			}
		}
		return true
	})
	quietIn := time.Since(quietAt)
	if quietIn > clusterQuietWithin {
		t.Errorf("after the kill, with no call made, the sockets reached seq %d after %v, want within %v",
			quietHead, quietIn.Round(time.Millisecond), clusterQuietWithin)
	}
	c.quiet.Unlock()
	base := c.acked()
	c.waitFor("webhooks after the kill", func() bool { return c.ackedLocked()-base >= clusterAcksAfter })

	// The end: the load stops, the outbox sends what it holds, and every
	// socket still open reaches the head of a log that no longer moves.
	stopLoad()
	c.mu.Lock()
	notes, answers, repeated := 0, 0, 0
	for _, r := range c.replies {
		if r.attempts > 1 {
			repeated++
		}
		switch {
		case r.messageID == "":
		case r.private:
			notes++
		default:
			answers++
		}
	}
	c.mu.Unlock()
	gw.waitSends(t, answers)
	var evs []clusterEvent
	for {
		head := uint64(len(clusterLog(t, p0, admin.token)))
		c.waitFor(fmt.Sprintf("every open socket to reach seq %d", head), func() bool {
			for _, s := range c.socks {
				if s.closedAt.IsZero() && s.last < head {
					return false
				}
			}
			return true
		})
		if evs = clusterLog(t, p0, admin.token); uint64(len(evs)) == head {
			break
		}
	}
	cancel()
	readers.Wait()

	// The log, and every socket's stream against it.
	head := uint64(len(evs))
	for i, e := range evs {
		if e.seq != uint64(i+1) {
			t.Fatalf("log position %d holds seq %d: the log has a gap", i+1, e.seq)
		}
	}
	if head <= revokeHead {
		t.Errorf("the log did not grow after the revocation (head %d, %d at the revocation)", head, revokeHead)
	}
	reconnects, seen := 0, 0
	for _, s := range c.socks {
		end := head
		if s.who.name == revoked.name {
			end = s.last
		}
		if s.last != end || uint64(len(s.seen)) != end-s.since {
			t.Errorf("socket %d (%s, since %d) saw %d events up to seq %d, want %d..%d", s.n, s.who.name, s.since, len(s.seen), s.last, s.since+1, end)
		}
		differ := 0
		for j, e := range s.seen {
			want := evs[s.since+uint64(j)]
			if e.seq != want.seq || !clusterSameEvent(e.raw, want.raw) {
				if differ++; differ <= 3 {
					t.Errorf("socket %d at seq %d saw %s, the log holds %s", s.n, e.seq, e.raw, want.raw)
				}
			}
		}
		reconnects += s.connects - 1
		seen += len(s.seen)
	}

	// Customers' messages: every acknowledged webhook stored exactly once,
	// nothing stored that no webhook carried.
	var convs []string
	for _, e := range evs {
		if e.typ == "conversation.created" {
			var d struct {
				ID string `json:"id"`
			}
			json.Unmarshal(e.data, &d)
			convs = append(convs, d.ID)
		}
	}
	stored := crashStoredMessages(t, p0, admin.token, convs)
	inbound := map[string]int{}
	byClient := map[string][]crashStored{}
	for _, m := range stored {
		if m.Direction == "in" {
			inbound[m.ExternalID]++
		} else {
			byClient[m.ClientID] = append(byClient[m.ClientID], m)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	acked, redelivered, lost, dups, ackedByKilled := 0, 0, 0, 0, 0
	for id, h := range c.hooks {
		if !h.acked {
			t.Errorf("webhook %s was never acknowledged", id)
			continue
		}
		acked++
		if h.attempts > 1 {
			redelivered++
		}
		if h.ackedBy == victim {
			ackedByKilled++
		}
		switch n := inbound[id]; {
		case n == 0:
			if lost++; lost <= 5 {
				t.Errorf("acknowledged webhook %s (process %d) is not stored", id, h.ackedBy+1)
			}
		case n > 1:
			if dups++; dups <= 5 {
				t.Errorf("webhook %s is stored %d times", id, n)
			}
		}
	}
	for id := range inbound {
		if c.hooks[id] == nil {
			t.Errorf("stored inbound message %q that no webhook carried", id)
		}
	}

	// Replies and notes: each acknowledged one stored once; replies reach
	// the gateway once (the outbox's process was never killed), notes never.
	gw.mu.Lock()
	defer gw.mu.Unlock()
	for clientID, r := range c.replies {
		if r.messageID == "" {
			t.Errorf("reply %s was never acknowledged", clientID)
			continue
		}
		ms := byClient[clientID]
		if len(ms) != 1 || ms[0].ID != r.messageID {
			t.Errorf("reply %s (message %s) is stored as %+v", clientID, r.messageID, ms)
			continue
		}
		want := 1
		if r.private {
			want = 0
		}
		if n := gw.sends[r.messageID]; n != want {
			t.Errorf("message %s (note %v) reached the gateway %d times, want %d", r.messageID, r.private, n, want)
		}
	}
	if len(byClient) != notes+answers {
		t.Errorf("%d agents' messages stored, %d acknowledged", len(byClient), notes+answers)
	}

	slices.Sort(revokeLatency)
	t.Logf("processes: 3 on one database and one NATS server; %d sockets (%d identities), %d events seen in all, %d reconnections",
		len(c.socks), len(idents), seen, reconnects)
	t.Logf("log: head %d (seed %d), no gap; every open socket saw since..%d exactly once, in order, equal to the log", head, seedHead, head)
	t.Logf("webhooks: %d acknowledged (%d by process %d before its SIGKILL), %d stored, %d lost, %d duplicates, %d delivered again after a call got no answer",
		acked, ackedByVictim, victim+1, len(inbound), lost, dups, redelivered)
	t.Logf("agents: %d replies and %d notes acknowledged (%d posted again after a call got no answer), each stored once; %d replies sent, each once",
		answers, notes, repeated, len(gw.sends))
	t.Logf("kill: process %d (process %d holds the outbox) after %d webhooks; its %d sockets resumed on other processes within %v; %d webhooks acknowledged by it in all",
		victim+1, holder+1, clusterAcksToKill, len(moved), resumedIn.Round(time.Millisecond), ackedByKilled)
	t.Logf("after the kill, with no call made, every open socket reached the head (seq %d) %v after it was read",
		quietHead, quietIn.Round(time.Millisecond))
	t.Logf("revocation through process 3: answered in %v; the agent's 3 sockets (one per process) closed 4401 after %v",
		answered.Round(time.Millisecond), clusterRound(revokeLatency))
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// cluster is the three processes and the traffic around them.
type cluster struct {
	t       *testing.T
	client  *http.Client
	channel string
	procs   []*proc
	convs   []string
	ctx     context.Context // ends when the sockets must stop
	stop    chan struct{}   // closed to stop starting new calls
	nudge   chan struct{}   // an acknowledgement, an event, a close
	// quiet is held for reading by each call of the load and for
	// writing while no call may be made.
	quiet sync.RWMutex

	mu      sync.Mutex
	dead    []bool
	revoked string // the identity whose key was revoked, once it was
	socks   []*clusterSocket
	hooks   map[string]*clusterHook  // by gateway message id
	replies map[string]*clusterReply // by client_id
}

type clusterIdentity struct {
	name, token, agentID, keyID string
}

type clusterHook struct {
	attempts, ackedBy int
	acked             bool
}

type clusterReply struct {
	private   bool
	attempts  int
	messageID string
}

// clusterSocket is one agent's live connection, moved to another process
// when its own dies. Its fields are guarded by cluster.mu.
type clusterSocket struct {
	n        int
	who      clusterIdentity
	since    uint64
	last     uint64
	proc     int
	seen     []clusterEvent
	connects int
	welcomed chan struct{}

	closeCode websocket.StatusCode
	closedAt  time.Time
}

type clusterEvent struct {
	seq  uint64
	typ  string
	data json.RawMessage
	raw  json.RawMessage
}

func parseClusterEvent(raw json.RawMessage) (clusterEvent, error) {
	var e struct {
		Seq  uint64          `json:"seq"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return clusterEvent{}, fmt.Errorf("event %s: %w", raw, err)
	}
	return clusterEvent{seq: e.Seq, typ: e.Type, data: e.Data, raw: raw}, nil
}

func (c *cluster) stopping() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

func (c *cluster) poke() {
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

// waitFor waits, on the run's own signals, until cond holds; cond runs
// with c.mu held.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.nudge:
		case <-deadline:
			c.t.Fatalf("timed out waiting for %s (%d webhooks acknowledged)", what, c.acked())
		}
	}
}

func (c *cluster) ackedLocked() int {
	n := 0
	for _, h := range c.hooks {
		if h.acked {
			n++
		}
	}
	return n
}

// answered is how many replies and notes were acknowledged.
func (c *cluster) answered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.replies {
		if r.messageID != "" {
			n++
		}
	}
	return n
}

func (c *cluster) acked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ackedLocked()
}

// alive picks the first live process from i on.
func (c *cluster) alive(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range clusterProcs {
		if j := (i + k) % clusterProcs; !c.dead[j] {
			return j
		}
	}
	return -1
}

func (c *cluster) isDead(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead[i]
}

// deliver makes one call until a process answers 2xx, as a gateway or an
// app behind a load balancer does: a call that got no answer (its process
// was killed) is made again, unchanged, to the next live process; 429 and
// 503 wait as told.
func (c *cluster) deliver(what string, first int, call func(base string) (*http.Request, error)) (body []byte, status, by, attempts int, ok bool) {
	for attempts, next := 1, first; ; attempts++ {
		by = c.alive(next)
		req, err := call(c.procs[by].url)
		if err != nil {
			c.t.Errorf("%s: %v", what, err)
			return nil, 0, by, attempts, false
		}
		resp, err := c.client.Do(req)
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			if c.isDead(by) {
				next = by + 1
				continue
			}
			c.t.Errorf("%s: process %d, which is alive, did not answer: %v", what, by+1, err)
			return nil, 0, by, attempts, false
		}
		switch {
		case resp.StatusCode/100 == 2:
			return body, resp.StatusCode, by, attempts, true
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			wait := 100 * time.Millisecond // the backoff a client owes a busy server
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-time.After(wait):
			case <-c.ctx.Done():
				return body, resp.StatusCode, by, attempts, false
			}
		default:
			c.t.Errorf("%s: process %d answered %d %s", what, by+1, resp.StatusCode, body)
			return body, resp.StatusCode, by, attempts, false
		}
	}
}

// postHook delivers one signed customer message with its own gateway id.
func (c *cluster) postHook(first int, id, from string) bool {
	body, _ := json.Marshal(map[string]any{"id": id, "from": from, "to": crashFrom, "text": "hello " + id, "timestamp": time.Now().Unix()})
	h := &clusterHook{}
	c.mu.Lock()
	c.hooks[id] = h
	c.mu.Unlock()
	_, _, by, attempts, ok := c.deliver("webhook "+id, first, func(base string) (*http.Request, error) {
		req, err := http.NewRequest("POST", base+"/webhooks/sms/"+c.channel, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(sms.SignatureHeader, sms.Sign(clusterHookSecret, body))
		return req, nil
	})
	c.mu.Lock()
	h.attempts, h.ackedBy, h.acked = attempts, by, ok
	c.mu.Unlock()
	c.poke()
	return ok
}

// postReply posts one reply or note with its own client_id; a repeat after
// a call that got no answer must give back the same message.
func (c *cluster) postReply(first int, who clusterIdentity, conv string, private bool) bool {
	clientID := uuid.NewString()
	r := &clusterReply{private: private}
	c.mu.Lock()
	c.replies[clientID] = r
	c.mu.Unlock()
	payload, _ := json.Marshal(map[string]any{"client_id": clientID, "text": who.name + " says " + clientID, "private": private})
	body, _, _, attempts, ok := c.deliver("reply "+clientID, first, func(base string) (*http.Request, error) {
		req, err := http.NewRequest("POST", base+"/api/v1/conversations/"+conv+"/messages", bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+who.token)
		return req, nil
	})
	if !ok {
		return false
	}
	var out struct {
		Message struct {
			ID       string `json:"id"`
			ClientID string `json:"client_id"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Message.ID == "" || out.Message.ClientID != clientID {
		c.t.Errorf("reply %s: answer %s (%v)", clientID, body, err)
		return false
	}
	c.mu.Lock()
	r.messageID, r.attempts = out.Message.ID, attempts
	c.mu.Unlock()
	return true
}

// How one connection of a socket ended.
const (
	clusterGone    = iota // its process died, or the run is over
	clusterSlow           // closed 4008: resume on the same process
	clusterRevoked        // closed 4401
	clusterWrong          // it saw something it must not; reported
)

// follow keeps one socket open until the run ends or its key is revoked,
// moving to the next live process when its own dies and resuming from
// the last seq it saw.
func (c *cluster) follow(s *clusterSocket) {
	for {
		c.mu.Lock()
		proc := s.proc
		c.mu.Unlock()
		switch c.followOne(s, proc) {
		case clusterSlow:
			continue
		case clusterRevoked, clusterWrong:
			c.poke()
			return
		}
		if c.ctx.Err() != nil {
			return
		}
		if !c.isDead(proc) {
			c.t.Errorf("socket %d on process %d ended, and the process is alive", s.n, proc+1)
			return
		}
		next := c.alive(proc + 1)
		c.mu.Lock()
		s.proc = next
		c.mu.Unlock()
	}
}

func (c *cluster) followOne(s *clusterSocket, proc int) int {
	dialCtx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dialCtx, strings.Replace(c.procs[proc].url, "http", "ws", 1)+"/api/v1/ws", nil)
	if err != nil {
		return clusterGone
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	c.mu.Lock()
	last := s.last
	c.mu.Unlock()
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": s.who.token, "since": last})
	if err := conn.Write(dialCtx, websocket.MessageText, hello); err != nil {
		return clusterGone
	}
	welcomed := false
	for {
		_, b, err := conn.Read(c.ctx)
		if err != nil {
			switch code := websocket.CloseStatus(err); code {
			case -1:
				return clusterGone
			case 4008:
				return clusterSlow
			default:
				c.mu.Lock()
				s.closeCode, s.closedAt = code, time.Now()
				revoked := c.revoked
				c.mu.Unlock()
				if code == 4401 && s.who.name == revoked {
					return clusterRevoked
				}
				c.t.Errorf("socket %d (%s) on process %d closed with %v: %v", s.n, s.who.name, proc+1, code, err)
				return clusterWrong
			}
		}
		var f struct {
			Type  string          `json:"type"`
			Head  uint64          `json:"head"`
			Event json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Errorf("socket %d: frame %s: %v", s.n, b, err)
			return clusterWrong
		}
		switch {
		case !welcomed:
			if f.Type != "welcome" || f.Head < last {
				c.t.Errorf("socket %d: process %d answered hello since=%d with %s", s.n, proc+1, last, b)
				return clusterWrong
			}
			welcomed = true
			c.mu.Lock()
			s.connects++
			if s.connects == 1 {
				close(s.welcomed)
			}
			c.mu.Unlock()
			c.poke()
		case f.Type == "event":
			e, err := parseClusterEvent(f.Event)
			if err != nil {
				c.t.Errorf("socket %d: %v", s.n, err)
				return clusterWrong
			}
			if e.seq != last+1 {
				c.t.Errorf("socket %d on process %d got seq %d after %d", s.n, proc+1, e.seq, last)
				return clusterWrong
			}
			last = e.seq
			c.mu.Lock()
			s.last = last
			s.seen = append(s.seen, e)
			c.mu.Unlock()
			c.poke()
		case f.Type == "reset":
			c.t.Errorf("socket %d: process %d reset a socket resuming at %d: %s", s.n, proc+1, last, b)
			return clusterWrong
		}
		// presence and typing frames carry no seq.
	}
}

// clusterHelloCode opens a socket with token and returns how the process
// closed it.
func clusterHelloCode(t *testing.T, p *proc, token string) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.Replace(p.url, "http", "ws", 1)+"/api/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": token, "since": 0})
	if err := conn.Write(ctx, websocket.MessageText, hello); err != nil {
		return websocket.CloseStatus(err)
	}
	for {
		if _, b, err := conn.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		} else if strings.Contains(string(b), `"welcome"`) {
			t.Errorf("a revoked session was welcomed: %s", b)
		}
	}
}

// clusterHoldsOutbox says whether p took the outbox's lease.
func clusterHoldsOutbox(p *proc) bool {
	return regexp.MustCompile(`msg="jobs: lease taken; running" job=outbox`).MatchString(p.logs.String())
}

func clusterSignIn(t *testing.T, p *proc, key string) string {
	t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": key}, &s); st != 201 {
		t.Fatalf("sign in: %d", st)
	}
	return s.Token
}

// clusterAgent adds an agent and signs it in.
func clusterAgent(t *testing.T, p *proc, adminToken, name string) clusterIdentity {
	t.Helper()
	var out struct {
		Agent struct {
			ID string `json:"id"`
		} `json:"agent"`
		Key struct {
			ID string `json:"id"`
		} `json:"key"`
		AccessKey string `json:"access_key"`
	}
	email := strings.ToLower(strings.ReplaceAll(name, " ", ".")) + "@example.com"
	if st := p.call("POST", "/api/v1/agents", adminToken, map[string]string{"name": name, "email": email, "role": "agent"}, &out); st != 201 {
		t.Fatalf("add agent %s: %d", name, st)
	}
	return clusterIdentity{name: name, token: clusterSignIn(t, p, out.AccessKey), agentID: out.Agent.ID, keyID: out.Key.ID}
}

func clusterConversations(t *testing.T, p *proc, token string) []string {
	t.Helper()
	var list struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	if st := p.call("GET", "/api/v1/conversations?limit=200", token, nil, &list); st != 200 {
		t.Fatalf("list conversations: %d", st)
	}
	var ids []string
	for _, c := range list.Conversations {
		ids = append(ids, c.ID)
	}
	return ids
}

// clusterLog reads the tenant's whole log, each event as the API gives it.
func clusterLog(t *testing.T, p *proc, token string) []clusterEvent {
	t.Helper()
	var all []clusterEvent
	var since uint64
	for {
		var page struct {
			Events []json.RawMessage `json:"events"`
			Head   uint64            `json:"head"`
			Reset  bool              `json:"reset"`
		}
		if st := p.call("GET", fmt.Sprintf("/api/v1/events?since=%d&limit=200", since), token, nil, &page); st != 200 || page.Reset {
			t.Fatalf("events since %d: %d (reset %v)", since, st, page.Reset)
		}
		for _, raw := range page.Events {
			e, err := parseClusterEvent(raw)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, e)
		}
		if len(page.Events) == 0 || all[len(all)-1].seq >= page.Head {
			return all
		}
		since = all[len(all)-1].seq
	}
}

// clusterSameEvent compares two events as JSON values: the socket and the
// API may space or order keys differently, never differ in content.
func clusterSameEvent(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func clusterRound(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// clusterGateway is a loopback SMS gateway that counts what it is asked
// to send, by OneBox message id.
type clusterGateway struct {
	srv     *httptest.Server
	mu      sync.Mutex
	sends   map[string]int
	changed chan struct{}
}

func newClusterGateway(t *testing.T) *clusterGateway {
	g := &clusterGateway{sends: map[string]int{}, changed: make(chan struct{}, 1)}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if r.Header.Get("Authorization") != "Bearer "+clusterGatewayToken || json.NewDecoder(r.Body).Decode(&body) != nil || body["id"] == "" {
			t.Errorf("gateway: bad send %v", body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.sends[body["id"]]++
		g.mu.Unlock()
		select {
		case g.changed <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"gw-%s"}`, body["id"])
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// waitSends waits until n distinct messages reached the gateway.
func (g *clusterGateway) waitSends(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		g.mu.Lock()
		got := len(g.sends)
		g.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-g.changed:
		case <-deadline:
			t.Fatalf("the gateway got %d of %d replies", got, n)
		}
	}
}

// holdingGateway is a loopback SMS gateway that, until released, holds
// every send it is asked for: the outbox's process is then killed in the
// middle of sending. A held send whose caller goes away is not counted.
type holdingGateway struct {
	srv      *httptest.Server
	release  chan struct{}
	arrived  chan struct{} // nudged at each send request
	mu       sync.Mutex
	sends    map[string]int
	inFlight map[string]bool // ids whose send was ever held
}

func newHoldingGateway(t *testing.T) *holdingGateway {
	g := &holdingGateway{release: make(chan struct{}), arrived: make(chan struct{}, 1),
		sends: map[string]int{}, inFlight: map[string]bool{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if r.Header.Get("Authorization") != "Bearer "+clusterGatewayToken || json.NewDecoder(r.Body).Decode(&body) != nil || body["id"] == "" {
			t.Errorf("gateway: bad send %v", body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case <-g.release:
		default:
			g.mu.Lock()
			g.inFlight[body["id"]] = true
			g.mu.Unlock()
			select {
			case g.arrived <- struct{}{}:
			default:
			}
			select {
			case <-g.release:
			case <-r.Context().Done():
				return // its process died
			}
		}
		g.mu.Lock()
		g.sends[body["id"]]++
		g.mu.Unlock()
		select {
		case g.arrived <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"gw-%s"}`, body["id"])
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// clusterTeam creates a tenant through p and an SMS channel whose gateway
// is sendURL, and returns the admin's session token and the channel's id.
func clusterTeam(t *testing.T, p *proc, name, sendURL string) (adminToken, channelID string) {
	t.Helper()
	var created struct {
		AccessKey string `json:"access_key"`
	}
	if st := p.call("POST", "/api/v1/tenants", operatorToken, map[string]string{"name": name}, &created); st != 201 {
		t.Fatalf("create tenant: %d", st)
	}
	adminToken = clusterSignIn(t, p, created.AccessKey)
	var ch struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if st := p.call("POST", "/api/v1/channels", adminToken, map[string]any{"type": "sms", "name": "SMS", "config": map[string]string{
		"send_url": sendURL, "auth_token": clusterGatewayToken, "webhook_secret": clusterHookSecret, "from": crashFrom,
	}}, &ch); st != 201 {
		t.Fatalf("create SMS channel: %d", st)
	}
	return adminToken, ch.Channel.ID
}

// clusterSMS delivers one signed customer SMS through p's webhook for the
// channel made by clusterTeam and requires a 2xx.
func clusterSMS(t *testing.T, p *proc, channelID, id, from, text string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"id": id, "from": from, "to": crashFrom, "text": text, "timestamp": time.Now().Unix()})
	req, _ := http.NewRequest("POST", p.url+"/webhooks/sms/"+channelID, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(sms.SignatureHeader, sms.Sign(clusterHookSecret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("SMS webhook %s through %s: %d", id, p.url, resp.StatusCode)
	}
}

// TestOutboxMovesWhenItsHolderIsKilled runs two processes on one database
// and one NATS server with a short job lease. Replies are accepted while
// the provider holds every send, then the process holding the outbox is
// killed with SIGKILL, sends in flight. The other process takes the lease
// over once it expires and sends every reply accepted before the kill:
// each reaches the provider, exactly once unless its send was in flight at
// the kill (such a send may be repeated; the SMS gateway deduplicates by
// message id).
func TestOutboxMovesWhenItsHolderIsKilled(t *testing.T) {
	const ttl = 2 * time.Second
	const replies = 12
	gw := newHoldingGateway(t)
	env := append(pgEnv(pgtest.DSN(t), t.TempDir()), "ONEBOX_NATS_URL="+startNATS(t),
		"ONEBOX_JOB_LEASE_TTL="+ttl.String(), "ONEBOX_RATE_SESSION=off", "ONEBOX_RATE_WEBHOOK=off")
	procs := []*proc{startEnv(t, env, t.TempDir(), "--log-level", "debug"), startEnv(t, env, t.TempDir(), "--log-level", "debug")}
	p0 := procs[0]

	token, channelID := clusterTeam(t, p0, "Lease", gw.srv.URL+"/v1/sms")
	clusterSMS(t, p0, channelID, "seed", crashContacts[0], "hello")
	convs := clusterConversations(t, p0, token)
	if len(convs) != 1 {
		t.Fatalf("%d conversations, want 1", len(convs))
	}

	// Which process runs the outbox: the first to take its lease.
	holder := -1
	deadline := time.Now().Add(30 * time.Second)
	for holder < 0 {
		for i, p := range procs {
			if clusterHoldsOutbox(p) {
				holder = i
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no process took the outbox's lease")
		}
		if holder < 0 {
			time.Sleep(50 * time.Millisecond) // polling the processes' logs
		}
	}
	other := 1 - holder

	// Replies through both processes, all accepted while the provider
	// holds every send.
	ids := map[string]bool{}
	for i := range replies {
		var out struct {
			Message struct {
				ID string `json:"id"`
			} `json:"message"`
		}
		if st := procs[i%2].call("POST", "/api/v1/conversations/"+convs[0]+"/messages", token,
			map[string]string{"client_id": uuid.NewString(), "text": fmt.Sprintf("reply %d", i)}, &out); st != 201 || out.Message.ID == "" {
			t.Fatalf("reply %d: %d", i, st)
		}
		ids[out.Message.ID] = true
	}
	select {
	case <-gw.arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the outbox never called the provider")
	}

	killAt := time.Now()
	if err := procs[holder].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-procs[holder].done
	gw.mu.Lock()
	held := len(gw.inFlight)
	gw.mu.Unlock()
	close(gw.release)

	deadline = time.Now().Add(30 * time.Second)
	for {
		gw.mu.Lock()
		n := 0
		for id := range ids {
			if gw.sends[id] > 0 {
				n++
			}
		}
		gw.mu.Unlock()
		if n == len(ids) {
			break
		}
		select {
		case <-gw.arrived:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("%d of %d replies reached the provider after the outbox's process was killed", n, len(ids))
		}
	}
	took := time.Since(killAt)
	if !clusterHoldsOutbox(procs[other]) {
		t.Error("the surviving process never said it took the outbox's lease")
	}
	if limit := ttl + 5*time.Second; took > limit {
		t.Errorf("the replies were sent %v after the kill, want within %v (lease %v)", took.Round(time.Millisecond), limit, ttl)
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	repeated := 0
	for id := range ids {
		switch n := gw.sends[id]; {
		case n > 1 && gw.inFlight[id]:
			repeated++
		case n > 1:
			t.Errorf("reply %s, not in flight at the kill, reached the provider %d times", id, n)
		}
	}
	for id := range gw.sends {
		if !ids[id] {
			t.Errorf("the provider was asked to send %s, which no reply is", id)
		}
	}
	t.Logf("outbox: process %d killed with %d sends held by the provider; process %d sent all %d replies %v after the kill (lease %v); %d in-flight sends repeated",
		holder+1, held, other+1, len(ids), took.Round(time.Millisecond), ttl, repeated)
}
