package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/pgtest"
	"github.com/onebox/onebox/internal/postgres"
)

// tenantState is what a tenant looks like through the service, to compare
// before and after a migration.
type tenantState struct {
	Conversations []string
	Messages      map[string][]string // conversation id -> "id text status"
	Events        []inbox.Event
	Head          uint64
}

func readTenant(t *testing.T, ctx context.Context, svc *inbox.Service, store inbox.Store, p inbox.Principal) tenantState {
	t.Helper()
	st := tenantState{Messages: map[string][]string{}}
	convs, _, err := svc.ListConversations(ctx, p, inbox.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range convs {
		st.Conversations = append(st.Conversations, c.ID)
		msgs, err := svc.ListMessages(ctx, p, c.ID, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			st.Messages[c.ID] = append(st.Messages[c.ID], fmt.Sprintf("%s %q %s", m.ID, m.Text, m.Status))
		}
	}
	evs, head, err := store.Events(ctx, p.Tenant.ID, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		evs[i].At = evs[i].At.UTC()
	}
	st.Events, st.Head = evs, head
	return st
}

// A bbolt data directory filled through the service (two tenants, agents,
// channels, customer messages, a reply, a private note), copied into
// PostgreSQL by `onebox migrate`: the same conversations, messages and
// logs come back through the service on PostgreSQL, the same access keys
// sign in, the logs go on from their heads, and a second run refuses the
// now non-empty database.
func TestMigrateBoltIntoPostgres(t *testing.T) {
	ctx := t.Context()
	data := t.TempDir()
	src, err := bolt.Open(storePath(data), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := inbox.NewService(inbox.Config{Store: src})
	if err != nil {
		t.Fatal(err)
	}
	type made struct {
		adminKey, agentKey string
		before             tenantState
	}
	var tenants []*made
	for ti, name := range []string{"Acme", "Globex"} {
		_, _, _, rawAdmin, err := svc.CreateTenant(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		admin, _, err := svc.SignIn(ctx, rawAdmin, inbox.Device{Name: "test"})
		if err != nil {
			t.Fatal(err)
		}
		_, _, rawAgent, err := svc.CreateAgent(ctx, admin, inbox.NewAgent{Name: "Sam", Email: fmt.Sprintf("sam%d@example.com", ti), Role: inbox.RoleAgent})
		if err != nil {
			t.Fatal(err)
		}
		ch, err := svc.CreateChannel(ctx, admin, inbox.ChannelDemo, "Demo", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 30 {
			_, err := svc.Receive(ctx, ch.ID, []inbox.Inbound{{
				ExternalID: fmt.Sprintf("%s-%d", name, i), ContactHandle: fmt.Sprintf("+1555%04d", i%4),
				ContactName: fmt.Sprintf("Customer %d", i%4), Text: fmt.Sprintf("message %d to %s", i, name),
			}})
			if err != nil {
				t.Fatal(err)
			}
		}
		convs, _, err := svc.ListConversations(ctx, admin, inbox.Filter{Limit: 10})
		if err != nil || len(convs) != 4 {
			t.Fatalf("conversations: %d %v", len(convs), err)
		}
		if _, _, err := svc.SendMessage(ctx, admin, convs[0].ID, inbox.Draft{ClientID: uuid.NewString(), Text: "a reply"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.SendMessage(ctx, admin, convs[1].ID, inbox.Draft{ClientID: uuid.NewString(), Text: "a note", Private: true}); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, &made{adminKey: rawAdmin, agentKey: rawAgent, before: readTenant(t, ctx, svc, src, admin)})
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "secret.key"), []byte(testSecretKey), 0o600); err != nil {
		t.Fatal(err)
	}

	dsn := pgtest.DSN(t)
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"migrate", "--from", data, "--to", dsn}, &stdout, &stderr); code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Log(out)
	for _, want := range []string{"The copy matches the source", "logs:    2", "ONEBOX_SECRET_KEY", "secret.key"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "search_path") {
		t.Errorf("summary shows the connection string's parameters:\n%s", out)
	}

	dst, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	psvc, err := inbox.NewService(inbox.Config{Store: dst})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range tenants {
		admin, _, err := psvc.SignIn(ctx, m.adminKey, inbox.Device{Name: "test"})
		if err != nil {
			t.Fatalf("admin key after migration: %v", err)
		}
		if _, _, err := psvc.SignIn(ctx, m.agentKey, inbox.Device{Name: "test"}); err != nil {
			t.Fatalf("agent key after migration: %v", err)
		}
		// Sign-in appended to the log; compare up to the old head.
		after := readTenant(t, ctx, psvc, dst, admin)
		if !reflect.DeepEqual(after.Conversations, m.before.Conversations) || !reflect.DeepEqual(after.Messages, m.before.Messages) {
			t.Fatalf("conversations differ:\nbefore %v %v\nafter  %v %v", m.before.Conversations, m.before.Messages, after.Conversations, after.Messages)
		}
		if len(after.Events) < len(m.before.Events) || !reflect.DeepEqual(after.Events[:len(m.before.Events)], m.before.Events) {
			t.Fatalf("log differs: %d events before, %d after", len(m.before.Events), len(after.Events))
		}
		if after.Head < m.before.Head {
			t.Fatalf("head went back from %d to %d", m.before.Head, after.Head)
		}
		// The log goes on from its head.
		head := after.Head
		if _, _, err := psvc.SendMessage(ctx, admin, after.Conversations[0], inbox.Draft{ClientID: uuid.NewString(), Text: "on postgres"}); err != nil {
			t.Fatal(err)
		}
		evs, newHead, err := dst.Events(ctx, admin.Tenant.ID, head, 100)
		if err != nil || len(evs) == 0 || evs[0].Seq != head+1 || newHead < head+1 {
			t.Fatalf("log after migration: %d events from %d, head %d, %v", len(evs), head, newHead, err)
		}
	}

	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"migrate", "--from", data, "--to", dsn}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "already holds OneBox data") {
		t.Fatalf("second migrate: exit %d, %q", code, stderr.String())
	}
}

// Bad input stops migrate before anything is read or written.
func TestMigrateRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", t.TempDir(), "--to", "mysql://x"}, "postgres://"},
		{[]string{"--from", t.TempDir(), "--to", "postgres://127.0.0.1:1/x"}, "no OneBox database"},
		{[]string{"--from", t.TempDir(), "--to", "postgres://127.0.0.1:1/x", "extra"}, "unexpected argument"},
	} {
		t.Setenv("ONEBOX_STORE", "")
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), append([]string{"migrate"}, tc.args...), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("migrate %v: exit %d, %q; want %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
