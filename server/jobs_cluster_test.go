package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/push"
	"github.com/onebox/onebox/internal/push/pushtest"
)

// jobsLeaseTTL is the job lease of these tests: short, so a job whose
// process dies moves within seconds.
const jobsLeaseTTL = 2 * time.Second

// jobsWait bounds every wait on something the processes do.
const jobsWait = 30 * time.Second

// jobsCluster is several real processes on one PostgreSQL schema, one
// NATS server and one media directory, as docs/scaling.md has them.
type jobsCluster struct {
	t     *testing.T
	dsn   string
	media string
	procs []*proc
	dead  []bool
}

func newJobsCluster(t *testing.T, n int, extraEnv ...string) *jobsCluster {
	t.Helper()
	c := &jobsCluster{t: t, dsn: pgtest.DSN(t), media: t.TempDir()}
	env := append(pgEnv(c.dsn, c.media), "ONEBOX_NATS_URL="+startNATS(t),
		"ONEBOX_JOB_LEASE_TTL="+jobsLeaseTTL.String(), "ONEBOX_RATE_SESSION=off", "ONEBOX_RATE_WEBHOOK=off")
	env = append(env, extraEnv...)
	start := func() {
		// At debug level a process logs each lease it takes.
		c.procs = append(c.procs, startEnv(t, env, t.TempDir(), "--log-level", "debug"))
		c.dead = append(c.dead, false)
	}
	// The first process takes every job before the others start, so each
	// test knows where the jobs begin.
	start()
	for _, job := range jobNames {
		c.waitTake(job, nil)
	}
	for range n - 1 {
		start()
	}
	return c
}

// jobNames are the jobs a process runs under a lease (serve.go).
var jobNames = []string{"outbox", "snoozes", "stale-statuses", "media-cleanup", "erasure", "retention"}

// takes counts, per process, the times it took job's lease.
func (c *jobsCluster) takes(job string) []int {
	re := regexp.MustCompile(`msg="jobs: lease taken; running" job=` + regexp.QuoteMeta(job) + ` `)
	out := make([]int, len(c.procs))
	for i, p := range c.procs {
		out[i] = len(re.FindAllStringIndex(p.logs.String(), -1))
	}
	return out
}

// waitTake waits until a live process takes job's lease more often than
// before says (nil: never before) and returns it. Two taking it is an
// error: the lease is one process's at a time.
func (c *jobsCluster) waitTake(job string, before []int) int {
	c.t.Helper()
	if before == nil {
		before = make([]int, len(c.procs))
	}
	var took []int
	waitUntil(c.t, "a process to take the "+job+" lease", func() bool {
		took = took[:0]
		for i, n := range c.takes(job) {
			if !c.dead[i] && n > before[i] {
				took = append(took, i)
			}
		}
		return len(took) > 0
	})
	if len(took) > 1 {
		c.t.Fatalf("processes %v all took the %s lease", took, job)
	}
	return took[0]
}

// alive returns the live processes other than skip.
func (c *jobsCluster) alive(skip int) []*proc {
	var out []*proc
	for i, p := range c.procs {
		if i != skip && !c.dead[i] {
			out = append(out, p)
		}
	}
	return out
}

// waitUntil polls cond until it holds or jobsWait passes: what it waits
// for happens in other processes, which send no signal the test can take.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(jobsWait)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", jobsWait, what)
		}
		<-tick.C
	}
}

// dbConn is a connection of the test's own to the processes' database.
func dbConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the database: %v", err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

// convMessagesSQL selects the stored messages of conversation $1, in the
// order the store scans them.
const convMessagesSQL = `FROM kv WHERE coll = 'messages' AND position(convert_to($1 || '/', 'UTF8') in key) = 1`

func storedMessages(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, conv string) int {
	t.Helper()
	var n int
	if err := q.QueryRow(context.Background(), "SELECT count(*) "+convMessagesSQL, conv).Scan(&n); err != nil {
		t.Fatalf("count stored messages: %v", err)
	}
	return n
}

// injectFrom stores count customer messages from handle through p.
func injectFrom(t *testing.T, p *proc, tm team, handle, text string, count int) {
	t.Helper()
	for sent := 0; sent < count; {
		var msgs []any
		for ; sent < count && len(msgs) < 100; sent++ {
			msgs = append(msgs, map[string]any{"external_id": fmt.Sprintf("%s-%d", handle, sent), "from": handle, "text": fmt.Sprintf("%s %d", text, sent)})
		}
		if st := p.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tm.channelID, "messages": msgs}, nil); st != 201 {
			t.Fatalf("inject from %s: %d", handle, st)
		}
	}
}

type jobsConv struct{ id, contactID string }

// conversationsByHandle maps each contact's handle to its conversation.
func conversationsByHandle(t *testing.T, p *proc, token string) map[string]jobsConv {
	t.Helper()
	var list struct {
		Conversations []struct {
			ID      string `json:"id"`
			Contact struct {
				ID     string `json:"id"`
				Handle string `json:"handle"`
			} `json:"contact"`
		} `json:"conversations"`
	}
	if st := p.call("GET", "/api/v1/conversations?limit=200", token, nil, &list); st != 200 {
		t.Fatalf("list conversations: %d", st)
	}
	out := map[string]jobsConv{}
	for _, c := range list.Conversations {
		out[c.Contact.Handle] = jobsConv{id: c.ID, contactID: c.Contact.ID}
	}
	return out
}

// messageCount is how many messages the API shows in conv (at most 200).
func messageCount(t *testing.T, p *proc, token, conv string) int {
	t.Helper()
	var page struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if st := p.call("GET", "/api/v1/conversations/"+conv+"/messages?limit=200", token, nil, &page); st != 200 {
		t.Fatalf("messages of %s: %d", conv, st)
	}
	return len(page.Messages)
}

type jobsAudit struct {
	Action string              `json:"action"`
	Target struct{ ID string } `json:"target"`
	Detail map[string]int      `json:"detail"`
}

// auditOf returns the tenant's audit entries with action, newest first.
func auditOf(t *testing.T, p *proc, token, action string) []jobsAudit {
	t.Helper()
	var out []jobsAudit
	cursor := ""
	for {
		var page struct {
			Entries    []jobsAudit `json:"entries"`
			NextCursor string      `json:"next_cursor"`
		}
		if st := p.call("GET", "/api/v1/audit?limit=100&cursor="+cursor, token, nil, &page); st != 200 {
			t.Fatalf("audit: %d", st)
		}
		for _, e := range page.Entries {
			if e.Action == action {
				out = append(out, e)
			}
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// filesHolding lists the files under dir whose content is data.
func filesHolding(t *testing.T, dir string, data []byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Equal(b, data) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk media: %v", err)
	}
	return found
}

// TestErasureRunsOnceAcrossProcesses erases a contact through the process
// running the erasure job, of three on one database, and kills that
// process with SIGKILL half way: after it removed the first batch of the
// contact's messages, while its next step waits on a row lock the test
// holds. Another process takes the job over once the lease expires and
// finishes it: every process then shows the contact, its conversation,
// messages and media gone, the log holds exactly one contact.erased
// event, the audit log one request and one completion, and the completed
// job counts every message once.
func TestErasureRunsOnceAcrossProcesses(t *testing.T) {
	c := newJobsCluster(t, 3)
	tm := c.procs[0].newTeam("Erase Everywhere")
	const (
		erased   = "+15550300001"
		kept     = "+15550300002"
		messages = 250 // more than one erasure step (200) removes
	)
	injectFrom(t, c.procs[1], tm, erased, "ERASE-ME", messages)
	injectFrom(t, c.procs[2], tm, kept, "keep me", 2)
	convs := conversationsByHandle(t, c.procs[0], tm.token)
	victim, other := convs[erased], convs[kept]
	if victim.id == "" || other.id == "" {
		t.Fatalf("conversations %+v", convs)
	}

	// An agent's reply carrying an image: the contact's media.
	img := image.NewGray(image.Rect(0, 0, 7, 5))
	copy(img.Pix, "erase this picture")
	var pic bytes.Buffer
	png.Encode(&pic, img)
	st, body := c.procs[1].upload(tm.token, "erase.png", pic.Bytes())
	var up struct {
		Media struct {
			ID string `json:"id"`
		} `json:"media"`
	}
	if json.Unmarshal(body, &up); st != 201 || up.Media.ID == "" {
		t.Fatalf("upload: %d %s", st, body)
	}
	if st := c.procs[2].call("POST", "/api/v1/conversations/"+victim.id+"/messages", tm.token,
		map[string]string{"client_id": uuid.NewString(), "media_id": up.Media.ID}, nil); st != 201 {
		t.Fatalf("reply with the image: %d", st)
	}
	if files := filesHolding(t, c.media, pic.Bytes()); len(files) != 1 {
		t.Fatalf("the image is in %d files of the media directory, want 1", len(files))
	}

	holder := c.waitTake("erasure", nil)
	// The test locks the first stored message past the first erasure
	// step's batch (a customer's, which nothing else writes): the job's
	// first step goes through, its second waits.
	db := dbConn(t, c.dsn)
	ctx := context.Background()
	lock, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	// (The row is found first: FOR UPDATE would lock the rows an OFFSET
	// skips too.)
	rows, err := lock.Query(ctx, "SELECT key FROM kv WHERE coll = 'messages' AND key = (SELECT key "+convMessagesSQL+
		" ORDER BY key OFFSET 200 LIMIT 1) FOR UPDATE", victim.id)
	if err != nil {
		t.Fatal(err)
	}
	locked := 0
	for rows.Next() {
		locked++
	}
	if rows.Close(); rows.Err() != nil || locked != 1 {
		t.Fatalf("locked %d messages (%v), want 1", locked, rows.Err())
	}
	var lockPID int
	if err := lock.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&lockPID); err != nil {
		t.Fatal(err)
	}

	var accepted struct {
		Code string `json:"confirmation_code"`
	}
	if st := c.procs[holder].call("DELETE", "/api/v1/contacts/"+victim.contactID, tm.token, nil, &accepted); st != 202 || accepted.Code == "" {
		t.Fatalf("erase: %d %+v", st, accepted)
	}
	// Only the erasure writes that row. (Which of its pipelined
	// statements pg_stat_activity shows varies, so only who waits counts.)
	waitUntil(t, "the erasure's second step to wait on the test's lock", func() bool {
		var n int
		if err := lock.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", lockPID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	left := storedMessages(t, lock, victim.id)
	if left != messages+1-200 {
		t.Fatalf("%d of the contact's messages stored when the second step waits, want %d", left, messages+1-200)
	}

	// SIGKILL mid-way; then the lock goes, so a survivor can go on.
	killAt := time.Now()
	if err := c.procs[holder].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.procs[holder].done
	c.dead[holder] = true
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	survivors := c.alive(holder)
	b, third := survivors[0], survivors[1]
	waitUntil(t, "the erasure to complete on a surviving process", func() bool {
		var status struct {
			Status string `json:"status"`
		}
		req, _ := http.NewRequest("GET", b.url+"/privacy/deletion/"+accepted.Code, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&status)
		return status.Status == "completed"
	})
	took := time.Since(killAt)

	// One process finished it, having taken the lease after the kill; it
	// counts each message once though two processes removed them.
	completed := regexp.MustCompile(`msg="privacy: erasure completed" contacts=1 messages=(\d+)`)
	finishers := 0
	takes := c.takes("erasure")
	for i, p := range c.procs {
		m := completed.FindAllStringSubmatch(p.logs.String(), -1)
		switch {
		case len(m) == 0:
			continue
		case i == holder:
			t.Errorf("the killed process %d says it completed the erasure", i+1)
		case len(m) > 1 || m[0][1] != strconv.Itoa(messages+1):
			t.Errorf("process %d completed %v, want one erasure of %d messages", i+1, m, messages+1)
		case takes[i] != 1:
			t.Errorf("process %d completed the erasure having taken its lease %d times, want once (after the kill)", i+1, takes[i])
		}
		finishers++
	}
	if finishers != 1 {
		t.Errorf("%d processes completed the erasure, want 1", finishers)
	}

	// Every survivor shows the contact gone and the rest untouched.
	for _, p := range survivors {
		if st := p.call("GET", "/api/v1/conversations/"+victim.id, tm.token, nil, nil); st != 404 {
			t.Errorf("the erased conversation answers %d on %s", st, p.url)
		}
		if st := p.call("GET", "/api/v1/media/"+up.Media.ID, tm.token, nil, nil); st != 404 {
			t.Errorf("the erased image answers %d on %s", st, p.url)
		}
		if n := messageCount(t, p, tm.token, other.id); n != 2 {
			t.Errorf("the other contact has %d messages on %s, want 2", n, p.url)
		}
	}
	if n := storedMessages(t, db, victim.id); n != 0 {
		t.Errorf("%d of the erased contact's messages are still stored", n)
	}
	if files := filesHolding(t, c.media, pic.Bytes()); len(files) != 0 {
		t.Errorf("the erased image is still in %v", files)
	}
	erasedEvents := 0
	for _, e := range third.events(tm) {
		switch {
		case e.Type == "contact.erased":
			erasedEvents++
			if !strings.Contains(string(e.Data), victim.contactID) || !strings.Contains(string(e.Data), victim.id) {
				t.Errorf("contact.erased data %s", e.Data)
			}
		case strings.Contains(string(e.Data), victim.id) || strings.Contains(string(e.Data), victim.contactID) || strings.Contains(string(e.Data), "ERASE-ME"):
			t.Errorf("event %d (%s) still tells of the erased contact: %.200s", e.Seq, e.Type, e.Data)
		}
	}
	if erasedEvents != 1 {
		t.Errorf("the log holds %d contact.erased events, want 1", erasedEvents)
	}
	if n := len(auditOf(t, b, tm.token, "erasure.requested")); n != 1 {
		t.Errorf("%d erasure.requested audit entries, want 1", n)
	}
	if done := auditOf(t, third, tm.token, "erasure.completed"); len(done) != 1 || done[0].Target.ID != accepted.Code {
		t.Errorf("erasure.completed audit entries %+v, want one for %s", done, accepted.Code)
	}
	t.Logf("erasure: process %d killed after the first step (%d of %d messages left); completed %v later by a survivor (lease %v)",
		holder+1, left, messages+1, took.Round(time.Millisecond), jobsLeaseTTL)
}

// TestRetentionPurgesOnceAcrossProcesses ages messages in the database
// past a one-day policy and hands the retention job from process to
// process by stopping its holder (three processes, then two, then one).
// Each taker purges at once what is old by then: the audit log records
// each purge once, with exactly the messages it removed.
func TestRetentionPurgesOnceAcrossProcesses(t *testing.T) {
	c := newJobsCluster(t, 3)
	tm := c.procs[0].newTeam("Retention Everywhere")
	var rs struct {
		Days int `json:"messages_days"`
	}
	if st := c.procs[1].call("PUT", "/api/v1/settings/retention", tm.token, map[string]int{"messages_days": 1}, &rs); st != 200 || rs.Days != 1 {
		t.Fatalf("set retention: %d %+v", st, rs)
	}
	const oldHandle, newHandle = "+15550400001", "+15550400002"
	injectFrom(t, c.procs[2], tm, oldHandle, "old", 5)
	injectFrom(t, c.procs[0], tm, newHandle, "new", 3)
	convs := conversationsByHandle(t, c.procs[1], tm.token)
	oldConv, newConv := convs[oldHandle].id, convs[newHandle].id

	// Messages cannot be written in the past through the API: the test
	// moves their creation time back in the database.
	db := dbConn(t, c.dsn)
	age := func(conv string, limit int) {
		t.Helper()
		tag, err := db.Exec(context.Background(), `UPDATE kv SET val = convert_to(jsonb_set(convert_from(val, 'UTF8')::jsonb,
			'{created_at}', to_jsonb($2::text))::text, 'UTF8') WHERE coll = 'messages' AND key IN (SELECT key `+convMessagesSQL+` ORDER BY key LIMIT $3)`,
			conv, time.Now().Add(-72*time.Hour).UTC().Format(time.RFC3339Nano), limit)
		if err != nil || tag.RowsAffected() != int64(limit) {
			t.Fatalf("age %d messages: %v, %d aged", limit, err, tag.RowsAffected())
		}
	}
	purges := func(p *proc) []jobsAudit { return auditOf(t, p, tm.token, "retention.purged") }

	// The media cleanup moves with the jobs: a file two days old that no
	// record names (an upload cut short by a crash) goes; an older file
	// of a recorded upload stays.
	st, body := c.procs[1].upload(tm.token, "kept.png", []byte("\x89PNG\r\n\x1a\nkept"))
	var up struct {
		Media struct {
			ID string `json:"id"`
		} `json:"media"`
	}
	if json.Unmarshal(body, &up); st != 201 || up.Media.ID == "" {
		t.Fatalf("upload: %d %s", st, body)
	}
	keptFiles := filesHolding(t, c.media, []byte("\x89PNG\r\n\x1a\nkept"))
	if len(keptFiles) != 1 {
		t.Fatalf("the upload is in %d files, want 1", len(keptFiles))
	}
	orphanData := []byte("an upload cut short " + uuid.NewString())
	sum := sha256.Sum256(orphanData)
	sha := hex.EncodeToString(sum[:])
	orphan := filepath.Join(filepath.Dir(filepath.Dir(keptFiles[0])), sha[:2], sha)
	if err := os.MkdirAll(filepath.Dir(orphan), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, orphanData, 0o644); err != nil {
		t.Fatal(err)
	}
	twoDaysAgo := time.Now().Add(-48 * time.Hour)
	for _, f := range []string{orphan, keptFiles[0]} {
		if err := os.Chtimes(f, twoDaysAgo, twoDaysAgo); err != nil {
			t.Fatal(err)
		}
	}

	holder := 0 // newJobsCluster's first process holds every job
	rounds := []struct {
		conv string
		aged int
	}{{oldConv, 5}, {newConv, 2}}
	for r, round := range rounds {
		age(round.conv, round.aged)
		before := c.takes("retention")
		stopProc(t, c.procs[holder])
		c.dead[holder] = true
		holder = c.waitTake("retention", before)
		p := c.procs[holder]
		waitUntil(t, fmt.Sprintf("purge %d to be audited", r+1), func() bool { return len(purges(p)) > r })
		got := purges(p)
		if len(got) != r+1 {
			t.Fatalf("after purge %d the audit log has %d retention.purged entries, want %d", r+1, len(got), r+1)
		}
		for i, e := range got { // newest first
			if want := rounds[r-i].aged; e.Detail["messages"] != want {
				t.Errorf("retention.purged entry %d of %d says %d messages, want %d: %+v", len(got)-i, len(got), e.Detail["messages"], want, e)
			}
		}
	}
	last := c.procs[holder]
	if n := messageCount(t, last, tm.token, oldConv); n != 0 {
		t.Errorf("the old conversation has %d messages, want 0", n)
	}
	if n := messageCount(t, last, tm.token, newConv); n != 1 {
		t.Errorf("the recent conversation has %d messages, want 1", n)
	}
	for i, n := range c.takes("retention") {
		if n != 1 {
			t.Errorf("process %d took the retention lease %d times, want once", i+1, n)
		}
	}
	if n := len(purges(last)); n != len(rounds) {
		t.Errorf("%d purges audited in the end, want %d", n, len(rounds))
	}

	// The cleanup's holder was stopped in the first round at least (the
	// first process held every job): a taker has run it.
	waitUntil(t, "the media cleanup to remove the unrecorded file", func() bool {
		_, err := os.Stat(orphan)
		return os.IsNotExist(err)
	})
	if _, err := os.Stat(keptFiles[0]); err != nil {
		t.Errorf("the recorded upload's file: %v", err)
	}
	if st := last.call("GET", "/api/v1/media/"+up.Media.ID, tm.token, nil, nil); st != 200 {
		t.Errorf("the recorded upload answers %d", st)
	}
	for i, n := range c.takes("media-cleanup") {
		if n > 1 {
			t.Errorf("process %d took the media cleanup's lease %d times, want at most once", i+1, n)
		}
	}
}

// pushLog collects what a loopback push service receives.
type pushLog struct {
	mu      sync.Mutex
	got     map[string]int // endpoint + " " + body -> pushes
	total   int
	bad     []string
	changed chan struct{}
}

func collectPushes(ctx context.Context, wp *pushtest.WebPushService) *pushLog {
	l := &pushLog{got: map[string]int{}, changed: make(chan struct{}, 1)}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-wp.Pushes:
				var pl push.Payload
				err := p.Err
				if err == nil {
					err = json.Unmarshal(p.Payload, &pl)
				}
				l.mu.Lock()
				l.total++
				if err != nil {
					l.bad = append(l.bad, err.Error())
				}
				l.got[p.Endpoint+" "+pl.Body]++
				l.mu.Unlock()
				select {
				case l.changed <- struct{}{}:
				default:
				}
			}
		}
	}()
	return l
}

func (l *pushLog) count(endpoint, body string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got[endpoint+" "+body]
}

// wait waits for a push to endpoint showing body.
func (l *pushLog) wait(t *testing.T, endpoint, body string) {
	t.Helper()
	deadline := time.After(jobsWait)
	for l.count(endpoint, body) == 0 {
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("no push of %q reached %s", body, endpoint)
		}
	}
}

var pushDelivered = regexp.MustCompile(`(?m)^onebox_push_delivered_total (\d+)`)

// TestPushOnceAcrossProcesses: a customer message arriving through a
// webhook on one of three processes is pushed once to each agent without
// a socket (by the process that stored it), and not to an agent whose
// socket is on another process.
func TestPushOnceAcrossProcesses(t *testing.T) {
	wp := pushtest.NewWebPushService()
	defer wp.Close()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("nothing is sent in this test, yet the gateway got %s %s", r.Method, r.URL)
	}))
	defer gw.Close()
	c := newJobsCluster(t, 3, "ONEBOX_WEBPUSH_ALLOWED_HOSTS="+wp.Host(), "ONEBOX_VAPID_SUBJECT=mailto:ops@acme.example")
	p0 := c.procs[0]
	admin, channelID := clusterTeam(t, p0, "Push Once", gw.URL+"/v1/sms")
	ada := clusterAgent(t, c.procs[1], admin, "Ada")
	bo := clusterAgent(t, c.procs[2], admin, "Bo")
	var key struct {
		PublicKey string `json:"public_key"`
	}
	if st := p0.call("GET", "/api/v1/push/webpush/key", ada.token, nil, &key); st != 200 {
		t.Fatalf("webpush key: %d", st)
	}
	if err := wp.ExpectVAPIDKey(key.PublicKey); err != nil {
		t.Fatal(err)
	}
	subscribe := func(p *proc, who clusterIdentity) string {
		t.Helper()
		sub, err := wp.NewSubscription()
		if err != nil {
			t.Fatal(err)
		}
		body := map[string]any{"endpoint": sub.Endpoint, "keys": map[string]string{"p256dh": sub.P256dh, "auth": sub.Auth}}
		if st := p.call("POST", "/api/v1/push/webpush", who.token, body, nil); st != 201 {
			t.Fatalf("subscribe %s: %d", who.name, st)
		}
		return sub.Endpoint
	}
	adaSub, boSub := subscribe(c.procs[1], ada), subscribe(c.procs[2], bo)
	ctx, cancel := context.WithTimeout(context.Background(), 2*jobsWait)
	defer cancel()
	pushes := collectPushes(ctx, wp)

	hook := func(p *proc, from, text string) {
		t.Helper()
		clusterSMS(t, p, channelID, uuid.NewString(), from, text)
	}

	// Nobody has a socket: each message is pushed to both agents once,
	// whichever process stored it. The later messages, stored by the other
	// processes, show that by the time they are pushed nobody else pushed
	// the first (each process's pushes go in the order it stored them).
	texts := []string{"first, through process 1", "second, through process 2", "third, through process 3"}
	for i, text := range texts {
		hook(c.procs[i], fmt.Sprintf("+1555050000%d", i), text)
	}
	for _, text := range texts {
		pushes.wait(t, adaSub, text)
		pushes.wait(t, boSub, text)
	}
	delivered := make([]int, len(c.procs))
	waitUntil(t, "every process to count its pushes", func() bool {
		sum := 0
		for i, p := range c.procs {
			_, metrics := p.get("/metrics")
			if m := pushDelivered.FindStringSubmatch(metrics); m != nil {
				delivered[i], _ = strconv.Atoi(m[1])
			}
			sum += delivered[i]
		}
		return sum >= 2*len(texts)
	})
	for i, n := range delivered {
		if n != 2 {
			t.Errorf("process %d delivered %d pushes, want 2 (one per agent for the message it stored)", i+1, n)
		}
	}

	// Ada's socket is on process 2; messages arrive on process 1, which
	// holds no socket of the team: only Bo is pushed.
	head := uint64(len(p0.events(team{token: admin})))
	sock := c.procs[1].dial(ctx, ada.token, head)
	if f := sock.next(ctx); f.Type != "welcome" {
		t.Fatalf("first frame %s", f.raw)
	}
	online := []string{"fourth, Ada online on process 2", "fifth, Ada still online"}
	for i, text := range online {
		hook(p0, fmt.Sprintf("+1555050001%d", i), text)
		for {
			f := sock.next(ctx)
			if f.Type == "event" && f.Event.Type == "message.created" && strings.Contains(string(f.Event.Data), text) {
				break
			}
		}
		pushes.wait(t, boSub, text)
	}
	for _, text := range append(texts, online...) {
		if n := pushes.count(boSub, text); n != 1 {
			t.Errorf("Bo got %d pushes of %q, want 1", n, text)
		}
	}
	for _, text := range texts {
		if n := pushes.count(adaSub, text); n != 1 {
			t.Errorf("Ada got %d pushes of %q, want 1", n, text)
		}
	}
	for _, text := range online {
		if n := pushes.count(adaSub, text); n != 0 {
			t.Errorf("Ada, online on another process, got %d pushes of %q", n, text)
		}
	}
	pushes.mu.Lock()
	defer pushes.mu.Unlock()
	if want := 2*len(texts) + len(online); pushes.total != want || len(pushes.bad) > 0 {
		t.Errorf("the push service got %d pushes (%v refused), want %d", pushes.total, pushes.bad, want)
	}
}
