package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// backupAck is a customer message the server acknowledged.
type backupAck struct {
	team     int
	id, conv string
}

// TestBackupUnderLoadRestoresConsistently takes a backup of a running
// server while clients keep injecting customer messages, then does what
// docs/operations.md tells an operator to: stops the server, restores the
// backup into its data directory and starts it again. Through the API of
// the restored server, every tenant's log runs 1..head with no gap, every
// message.created event's message is there, every message acknowledged
// before the backup started is there by id, and messages acknowledged
// after the backup ended are not (the store really is the backup).
func TestBackupUnderLoadRestoresConsistently(t *testing.T) {
	data := t.TempDir()
	// The checks read every conversation; the session limit is not what
	// this test is about.
	env := []string{"ONEBOX_RATE_SESSION=off"}
	p := startEnv(t, env, data)
	var teams []team
	for i := range 3 {
		teams = append(teams, p.newTeam(fmt.Sprint("Team ", i)))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acks []backupAck
	// flowing is closed at 30 acknowledged messages, after at 30 more
	// once the backup is done (afterFrom is where those start).
	flowing, after := make(chan struct{}), make(chan struct{})
	afterFrom := -1
	errs := make(chan error, 16)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tm := i % len(teams)
			for j := 0; ctx.Err() == nil; j++ {
				body := map[string]any{"channel_id": teams[tm].channelID, "messages": []map[string]string{{
					"external_id": fmt.Sprintf("w%d-%d", i, j), "from": fmt.Sprintf("+1555%03d%03d", i, j%50), "name": "Load", "text": "hello",
				}}}
				var got struct {
					Messages []struct {
						ID             string `json:"id"`
						ConversationID string `json:"conversation_id"`
					} `json:"messages"`
				}
				if st := p.call("POST", "/api/v1/operator/inbound", operatorToken, body, &got); st != 201 || len(got.Messages) != 1 {
					if ctx.Err() != nil {
						return
					}
					errs <- fmt.Errorf("inbound: status %d, %d messages", st, len(got.Messages))
					return
				}
				mu.Lock()
				acks = append(acks, backupAck{team: tm, id: got.Messages[0].ID, conv: got.Messages[0].ConversationID})
				switch n := len(acks); {
				case n == 30:
					close(flowing)
				case afterFrom >= 0 && n == afterFrom+30:
					close(after)
				}
				mu.Unlock()
			}
		}()
	}
	wait := func(c chan struct{}) {
		t.Helper()
		select {
		case <-c:
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("stuck at %d messages", len(acks))
		}
	}
	// The backup starts once writes are flowing; what was acknowledged
	// by then must be in it.
	wait(flowing)
	mu.Lock()
	before := slices.Clone(acks)
	mu.Unlock()
	file := filepath.Join(t.TempDir(), "onebox-backup.db")
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"backup", "--url", p.url, "--token", operatorToken, file}, &out, &errb); code != 0 {
		t.Fatalf("backup exited %d: %s", code, errb.String())
	}
	// Writes go on after the backup too; what is acknowledged from here
	// was committed after the backup's snapshot, but for the few calls
	// in flight as it ended.
	mu.Lock()
	afterFrom = len(acks)
	mu.Unlock()
	wait(after)
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := os.Stat(file + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.tmp left behind: %v", file, err)
	}

	// Restoring over the running server's directory is refused.
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"restore", "--data", data, file}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "in use") {
		t.Fatalf("restore into a running server's directory: exit %d, %s", code, errb.String())
	}

	// The operator's way: stop, restore into the data directory, start.
	stopProc(t, p)
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"restore", "--data", data, file}, &out, &errb); code != 0 {
		t.Fatalf("restore exited %d: %s", code, errb.String())
	}
	if baks, _ := filepath.Glob(filepath.Join(data, "onebox.db.bak-*")); len(baks) != 1 {
		t.Fatalf("replaced store kept as %v, want one onebox.db.bak-<time>", baks)
	}
	p = startEnv(t, env, data)

	mu.Lock()
	later := acks[afterFrom:]
	mu.Unlock()
	// Where each message of the restored logs was read back through the
	// API: its conversation, or "" if it could not be read.
	readIn := map[string]string{}
	for i, tm := range teams {
		inLog := map[string]string{} // message id -> conversation
		evs := p.events(tm)          // the team's session is in the backup too
		for j, e := range evs {
			if e.Seq != uint64(j+1) {
				t.Fatalf("team %d: log position %d holds seq %d: a gap", i, j+1, e.Seq)
			}
			if e.Type != "message.created" {
				continue
			}
			var m struct {
				ID             string `json:"id"`
				ConversationID string `json:"conversation_id"`
			}
			if err := json.Unmarshal(e.Data, &m); err != nil || m.ID == "" {
				t.Fatalf("team %d: event %d: %s (%v)", i, e.Seq, e.Data, err)
			}
			if _, dup := inLog[m.ID]; dup {
				t.Fatalf("team %d: message %s created twice in the log", i, m.ID)
			}
			inLog[m.ID] = m.ConversationID
			readIn[m.ID] = ""
		}
		// Every logged message can be read, and nothing else is stored.
		convs := map[string]bool{}
		for _, conv := range inLog {
			convs[conv] = true
		}
		for conv := range convs {
			for _, id := range restoredMessages(t, p, tm, conv) {
				if inLog[id] != conv {
					t.Errorf("team %d: message %s is stored in %s, but no event created it there", i, id, conv)
				}
				readIn[id] = conv
			}
		}
	}
	for id, conv := range readIn {
		if conv == "" {
			t.Errorf("message %s of the log cannot be read through the API", id)
		}
	}
	for _, a := range before {
		if conv, ok := readIn[a.id]; !ok || conv != a.conv {
			t.Errorf("team %d: message %s, acknowledged before the backup started, is not in conversation %s after the restore", a.team, a.id, a.conv)
		}
	}
	missingLater := 0
	for _, a := range later {
		if _, ok := readIn[a.id]; !ok {
			missingLater++
		}
	}
	if missingLater == 0 {
		t.Errorf("all %d messages acknowledged after the backup are in the restored store: it is not the backup", len(later))
	}
	t.Logf("restored %d messages; %d acknowledged before the backup, all there; %d of the %d acknowledged after it absent, as they should be",
		len(readIn), len(before), missingLater, len(later))
}

// restoredMessages reads every message id of a conversation through the
// API, newest page first.
func restoredMessages(t *testing.T, p *proc, tm team, conv string) []string {
	t.Helper()
	var ids []string
	before := ""
	for {
		var page struct {
			Messages []struct {
				ID string `json:"id"`
			} `json:"messages"`
		}
		if st := p.call("GET", "/api/v1/conversations/"+conv+"/messages?limit=200&before="+before, tm.token, nil, &page); st != 200 {
			t.Fatalf("messages of %s: %d", conv, st)
		}
		for _, m := range page.Messages {
			ids = append(ids, m.ID)
		}
		if len(page.Messages) < 200 {
			return ids
		}
		before = page.Messages[0].ID
	}
}

func TestRestoreRefusesWhatIsNotADatabase(t *testing.T) {
	data := t.TempDir()
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"restore", "--data", data, junk}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not a sound database") {
		t.Fatalf("restore of junk: exit %d, %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(data, "onebox.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore left a store: %v", err)
	}
}

func TestBackupNeedsTheOperatorToken(t *testing.T) {
	p := start(t, t.TempDir())
	file := filepath.Join(t.TempDir(), "b.db")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"backup", "--url", p.url, "--token", "wrong", file}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "401") {
		t.Fatalf("backup with a wrong token: exit %d, %s", code, errb.String())
	}
	for _, f := range []string{file, file + ".tmp"} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a refused backup: %v", f, err)
		}
	}
}
