package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

// TestBackupUnderLoadRestoresConsistently takes a backup of a running
// server while clients keep injecting customer messages, restores it into
// a fresh data directory and checks the copy is one moment of the store:
// every tenant's log runs 1..head with no gap, and every message.created
// event's message is there.
func TestBackupUnderLoadRestoresConsistently(t *testing.T) {
	data := t.TempDir()
	p := start(t, data)
	var channels []string
	for i := range 3 {
		channels = append(channels, p.newTeam(fmt.Sprint("Team ", i)).channelID)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var sent atomic.Int64
	// flowing is closed at 30 acknowledged messages, after is at 30 more.
	flowing, after := make(chan struct{}), make(chan struct{})
	var backedUp atomic.Int64
	backedUp.Store(1 << 62)
	errs := make(chan error, 16)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := channels[i%len(channels)]
			for j := 0; ctx.Err() == nil; j++ {
				body := map[string]any{"channel_id": ch, "messages": []map[string]string{{
					"external_id": fmt.Sprintf("w%d-%d", i, j), "from": fmt.Sprintf("+1555%03d%03d", i, j%50), "name": "Load", "text": "hello",
				}}}
				if st := p.call("POST", "/api/v1/operator/inbound", operatorToken, body, nil); st != 201 {
					if ctx.Err() != nil {
						return
					}
					errs <- fmt.Errorf("inbound: status %d", st)
					return
				}
				switch n := sent.Add(1); {
				case n == 30:
					close(flowing)
				case n == backedUp.Load()+30:
					close(after)
				}
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
			t.Fatalf("stuck at %d messages", sent.Load())
		}
	}
	// The backup starts once writes are flowing.
	wait(flowing)
	file := filepath.Join(t.TempDir(), "onebox-backup.db")
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"backup", "--url", p.url, "--token", operatorToken, file}, &out, &errb); code != 0 {
		t.Fatalf("backup exited %d: %s", code, errb.String())
	}
	// Writes go on after the backup too.
	backedUp.Store(sent.Load())
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

	restored := t.TempDir()
	// An older store is in the way: restore keeps it.
	if err := os.WriteFile(filepath.Join(restored, "onebox.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"restore", "--data", restored, file}, &out, &errb); code != 0 {
		t.Fatalf("restore exited %d: %s", code, errb.String())
	}
	baks, _ := filepath.Glob(filepath.Join(restored, "onebox.db.bak-*"))
	if len(baks) != 1 {
		t.Fatalf("old store kept as %v, want one onebox.db.bak-<time>", baks)
	}

	store, err := bolt.Open(filepath.Join(restored, "onebox.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("open restored store: %v", err)
	}
	defer store.Close()
	checkRestored(t, store)
}

// checkRestored walks every tenant's log in the store.
func checkRestored(t *testing.T, store *bolt.Store) {
	t.Helper()
	ctx := context.Background()
	var ids []string
	err := store.View(ctx, func(tx inbox.Tx) error {
		return tx.Scan(inbox.Collection{Name: inbox.CollTenants}, "", "", false, func(k string, _ []byte) (bool, error) {
			ids = append(ids, k)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 {
		t.Fatalf("restored store has %d tenants, want 3", len(ids))
	}
	messages := 0
	for _, tenant := range ids {
		evs, head, err := store.Events(ctx, tenant, 0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(evs)) != head {
			t.Fatalf("tenant %s: %d events for head %d", tenant, len(evs), head)
		}
		for i, e := range evs {
			if e.Seq != uint64(i+1) {
				t.Fatalf("tenant %s: event %d has seq %d", tenant, i+1, e.Seq)
			}
			if e.Type != "message.created" {
				continue
			}
			var m struct {
				ID             string `json:"id"`
				ConversationID string `json:"conversation_id"`
			}
			if err := json.Unmarshal(e.Data, &m); err != nil {
				t.Fatal(err)
			}
			err := store.View(ctx, func(tx inbox.Tx) error {
				var raw json.RawMessage
				return tx.Get(inbox.Collection{Tenant: tenant, Name: inbox.CollMessages}, m.ConversationID+"/"+m.ID, &raw)
			})
			if err != nil {
				t.Fatalf("tenant %s: message of event %d: %v", tenant, e.Seq, err)
			}
			messages++
		}
	}
	if messages < 30 {
		t.Fatalf("the backup holds %d messages, want the 30 or more sent before it", messages)
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
