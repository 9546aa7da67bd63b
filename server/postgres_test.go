package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/pgtest"
)

// testSecretKey is a server key for processes that share a database.
var testSecretKey = strings.Repeat("5e", 32)

// pgEnv is the environment of a process on the test database.
func pgEnv(dsn, mediaDir string) []string {
	return []string{"ONEBOX_STORE=" + dsn, "ONEBOX_MEDIA_DIR=" + mediaDir, "ONEBOX_SECRET_KEY=" + testSecretKey}
}

// stopProc ends a server the way an operator does and waits for it.
func stopProc(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("server exited with %v\n%s", err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop after SIGTERM")
	}
}

func (p *proc) get(path string) (int, string) {
	p.t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signIn exchanges an access key for a session token.
func (p *proc) signIn(key string) string {
	p.t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": key}, &s); st != 201 {
		p.t.Fatalf("sign in: %d", st)
	}
	return s.Token
}

// The real binary on PostgreSQL: a tenant made, a message received, the
// process stopped and started again, and everything is still there, with
// the same access key and session; no bbolt file appears in the data
// directory.
func TestServeOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	data, media := t.TempDir(), t.TempDir()
	env := pgEnv(dsn, media)
	p := startEnv(t, env, data)

	var created struct {
		AccessKey string `json:"access_key"`
	}
	if st := p.call("POST", "/api/v1/tenants", operatorToken, map[string]string{"name": "Shared Database"}, &created); st != 201 {
		t.Fatalf("create tenant: %d", st)
	}
	token := p.signIn(created.AccessKey)
	var ch struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if st := p.call("POST", "/api/v1/channels", token, map[string]any{"type": "demo", "name": "Test"}, &ch); st != 201 {
		t.Fatalf("create channel: %d", st)
	}
	var out struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	body := map[string]any{"channel_id": ch.Channel.ID, "messages": []any{map[string]any{
		"external_id": "pg-1", "from": "+15550001", "text": "stored in postgres"}}}
	if st := p.call("POST", "/api/v1/operator/inbound", operatorToken, body, &out); st != 201 || len(out.Messages) != 1 {
		t.Fatalf("inbound: %d %+v", st, out)
	}
	if st, b := p.get("/readyz"); st != 200 {
		t.Fatalf("readyz: %d %s", st, b)
	}
	st, metrics := p.get("/metrics")
	if st != 200 || !strings.Contains(metrics, "onebox_store_retries_total") || !strings.Contains(metrics, "onebox_store_commit_seconds_count") {
		t.Fatalf("metrics: %d, want the store's series:\n%s", st, metrics)
	}
	if strings.Contains(p.logs.String(), "password") || strings.Contains(p.logs.String(), "search_path") {
		t.Fatalf("the log shows the connection string's parameters:\n%s", p.logs.String())
	}
	stopProc(t, p)

	p2 := startEnv(t, env, data)
	tm := team{token: token} // the session lives in the database too
	var found bool
	for _, e := range p2.events(tm) {
		if e.Type != "message.created" {
			continue
		}
		var m struct {
			ID   string `json:"id"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(e.Data, &m); err != nil {
			t.Fatal(err)
		}
		if m.ID == out.Messages[0].ID && m.Text == "stored in postgres" {
			found = true
		}
	}
	if !found {
		t.Fatal("the message is gone after the restart")
	}
	p2.signIn(created.AccessKey)
	if _, err := os.Stat(storePath(data)); !os.IsNotExist(err) {
		t.Fatalf("a bbolt file was made in the data directory: %v", err)
	}
	// Backups are PostgreSQL's own tools' business.
	var stdout, stderr bytes.Buffer
	t.Setenv("ONEBOX_STORE", dsn)
	if code := run(t.Context(), []string{"restore", "--data", data, "x.db"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "pg_dump") {
		t.Fatalf("restore with a PostgreSQL store: exit %d, %q", code, stderr.String())
	}
}

// Settings that cannot work together stop the server at start with a
// message naming what to set.
func TestScaleOutSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" means accepted
	}{
		{"bbolt default", nil, ""},
		{"not a postgres URL", map[string]string{"ONEBOX_STORE": "mysql://u:hunter2@db/x"}, "postgres:// or postgresql://"},
		{"postgres without media", map[string]string{"ONEBOX_STORE": "postgres://db/x", "ONEBOX_SECRET_KEY": testSecretKey}, "ONEBOX_MEDIA_DIR"},
		{"postgres without key", map[string]string{"ONEBOX_STORE": "postgresql://db/x", "ONEBOX_MEDIA_DIR": "/m"}, "ONEBOX_SECRET_KEY"},
		{"postgres", map[string]string{"ONEBOX_STORE": "postgres://db/x", "ONEBOX_MEDIA_DIR": "/m", "ONEBOX_SECRET_KEY": testSecretKey}, ""},
		{"nats with postgres", map[string]string{"ONEBOX_STORE": "postgres://db/x", "ONEBOX_MEDIA_DIR": "/m", "ONEBOX_SECRET_KEY": testSecretKey, "ONEBOX_NATS_URL": "nats://127.0.0.1:4222"}, ""},
		{"nats with bbolt", map[string]string{"ONEBOX_NATS_URL": "nats://127.0.0.1:4222"}, "needs a PostgreSQL store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"ONEBOX_STORE", "ONEBOX_MEDIA_DIR", "ONEBOX_SECRET_KEY", "ONEBOX_NATS_URL", "ONEBOX_DATA"} {
				t.Setenv(k, tc.env[k])
			}
			c, err := parseServe(nil, io.Discard)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error about %s", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("the error repeats the password: %v", err)
			case tc.want == "" && tc.env == nil && c.MediaDir != "data/media":
				t.Fatalf("media directory %q, want data/media", c.MediaDir)
			}
		})
	}
}

// Logs and summaries name the database by host and name only.
func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://onebox:s3cr%40t@db.internal:5432/onebox?sslmode=verify-full&password=x": "postgres://db.internal:5432/onebox",
		"postgresql://db/onebox":   "postgres://db/onebox",
		"postgres://u@[::1]:5/db?": "postgres://[::1]:5/db",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
