package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestChannelSecretsStayOutOfTheDataFiles runs the server, connects a
// WhatsApp channel, stops it, and looks for the channel's secrets in every
// file of the data directory but the key file; after a restart the channel
// still works (its verify token opens).
func TestChannelSecretsStayOutOfTheDataFiles(t *testing.T) {
	data := t.TempDir()
	p := start(t, data)
	tm := p.newTeam("Sealed")
	var ch struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	cfg := map[string]string{"phone_number_id": "1", "access_token": "ACCESS-TOKEN-77c1", "app_secret": "APP-SECRET-5d3e", "verify_token": "VERIFY-TOKEN-a9f0"}
	if st := p.call("POST", "/api/v1/channels", tm.token, map[string]any{"type": "whatsapp", "name": "WA", "config": cfg}, &ch); st != 201 {
		t.Fatalf("create channel: %d", st)
	}
	stopServer(t, p)

	st, err := os.Stat(filepath.Join(data, "secret.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key: %v, %v", st, err)
	}
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "secret.key" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range cfg {
			if len(s) > 1 && bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the channel secret %s in plain text", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	p = start(t, data)
	resp, err := http.Get(p.url + "/webhooks/whatsapp/" + ch.Channel.ID + "?hub.mode=subscribe&hub.verify_token=VERIFY-TOKEN-a9f0&hub.challenge=4242")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "4242" {
		t.Errorf("verify after restart: %d %s", resp.StatusCode, body)
	}
	stopServer(t, p)
}

func stopServer(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("server did not stop")
	}
}

// TestErasureReachesLiveClients erases a contact on a running server: the
// server's own job carries it out, and a connected app is told to drop
// the contact's data.
func TestErasureReachesLiveClients(t *testing.T) {
	p := start(t, t.TempDir())
	tm := p.newTeam("Erase")
	if st := p.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tm.channelID,
		"messages": []any{map[string]any{"external_id": "ext-erase-1", "from": "+15550999", "text": "LIVE-ERASE-MARKER"}}}, nil); st != 201 {
		t.Fatalf("inject: %d", st)
	}
	var list struct {
		Conversations []struct {
			ID      string `json:"id"`
			Contact struct {
				ID string `json:"id"`
			} `json:"contact"`
		} `json:"conversations"`
	}
	if st := p.call("GET", "/api/v1/conversations", tm.token, nil, &list); st != 200 || len(list.Conversations) != 1 {
		t.Fatalf("conversations: %d %+v", st, list)
	}
	conv := list.Conversations[0]
	head := uint64(len(p.events(tm)))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws := p.dial(ctx, tm.token, head)
	if f := ws.next(ctx); f.Type != "welcome" {
		t.Fatalf("first frame %s", f.raw)
	}
	var accepted struct {
		Code string `json:"confirmation_code"`
	}
	if st := p.call("DELETE", "/api/v1/contacts/"+conv.Contact.ID, tm.token, nil, &accepted); st != 202 || accepted.Code == "" {
		t.Fatalf("erase: %d %+v", st, accepted)
	}
	for {
		f := ws.next(ctx)
		if f.Type != "event" || f.Event.Type != "contact.erased" {
			continue
		}
		if !strings.Contains(string(f.Event.Data), conv.Contact.ID) || !strings.Contains(string(f.Event.Data), conv.ID) {
			t.Errorf("contact.erased data %s", f.Event.Data)
		}
		break
	}
	if st := p.call("GET", "/api/v1/conversations/"+conv.ID, tm.token, nil, nil); st != 404 {
		t.Errorf("erased conversation answers %d", st)
	}
}

// TestErasureResumesAfterSIGKILL kills the server right after it accepted an
// erasure, before it could carry it through, and checks that the restarted
// server finishes it: the erased text is then in no file of the data dir.
func TestErasureResumesAfterSIGKILL(t *testing.T) {
	data := t.TempDir()
	p := start(t, data)
	tm := p.newTeam("Kill Mid-Erasure")
	const marker = "KILLED-ERASURE-MARKER-7f3a"
	for i := 0; i < 20; i++ {
		if st := p.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tm.channelID,
			"messages": []any{map[string]any{"external_id": fmt.Sprintf("kill-%d", i), "from": "+15550777", "text": fmt.Sprintf("%s %d", marker, i)}}}, nil); st != 201 {
			t.Fatalf("inject: %d", st)
		}
	}
	var list struct {
		Conversations []struct {
			Contact struct {
				ID string `json:"id"`
			} `json:"contact"`
		} `json:"conversations"`
	}
	if st := p.call("GET", "/api/v1/conversations", tm.token, nil, &list); st != 200 || len(list.Conversations) != 1 {
		t.Fatalf("conversations: %d %+v", st, list)
	}
	var accepted struct {
		Code string `json:"confirmation_code"`
	}
	if st := p.call("DELETE", "/api/v1/contacts/"+list.Conversations[0].Contact.ID, tm.token, nil, &accepted); st != 202 || accepted.Code == "" {
		t.Fatalf("erase: %d %+v", st, accepted)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	interrupted := !strings.Contains(p.logs.String(), "privacy: erasure completed")

	p2 := start(t, data)
	var status struct {
		Status string `json:"status"`
	}
	req, _ := http.NewRequest("GET", p2.url+"/privacy/deletion/"+accepted.Code, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if status.Status != "completed" {
		// The restarted server resumes the job on its own and says so.
		p2.logs.waitMatches(t, regexp.MustCompile(`privacy: erasure completed`), 1)
	}
	t.Logf("killed before the erasure finished: %v", interrupted)
	filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s still holds erased text", path)
		}
		return nil
	})
}
