package inbox_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

func TestPushHostList(t *testing.T) {
	def := inbox.DefaultPushHosts()
	custom, err := inbox.ParsePushHosts(" Push.Example.com , 127.0.0.1:9000,*.wns.example,[::1]:8443 ")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		list     inbox.HostList
		endpoint string
		ok       bool
	}{
		{def, "https://fcm.googleapis.com/fcm/send/abc", true},
		{def, "https://fcm.googleapis.com:443/fcm/send/abc", true},
		{def, "https://updates.push.services.mozilla.com/wpush/v2/x", true},
		{def, "https://web.push.apple.com/QGuQyavX", true},
		{def, "https://wns2-par02p.notify.windows.com/w/?token=x", true},
		{def, "https://notify.windows.com/w", false}, // the wildcard needs a subdomain
		{def, "http://fcm.googleapis.com/fcm/send/abc", false},
		{def, "https://fcm.googleapis.com:8443/fcm/send/abc", false},
		{def, "https://fcm.googleapis.com.evil.example/x", false},
		{def, "https://evil.example/fcm.googleapis.com", false},
		{def, "https://127.0.0.1/x", false},
		{def, "https://user@fcm.googleapis.com/x", false},
		{def, "ftp://fcm.googleapis.com/x", false},
		{def, "/relative/path", false},
		{def, "", false},
		{custom, "https://push.example.com/x", true},
		{custom, "http://push.example.com/x", true}, // named by the operator
		{custom, "http://127.0.0.1:9000/p", true},
		{custom, "http://127.0.0.1:9001/p", false},
		{custom, "http://127.0.0.1/p", false},
		{custom, "https://a.wns.example/p", true},
		{custom, "https://[::1]:8443/p", true},
		{custom, "https://fcm.googleapis.com/fcm/send/abc", false}, // the list replaces the default
	}
	for _, c := range cases {
		_, err := c.list.Check(c.endpoint)
		if (err == nil) != c.ok {
			t.Errorf("Check(%q) on %v = %v, want ok %v", c.endpoint, c.list.Hosts(), err, c.ok)
		}
		if err != nil && inbox.ErrorCode(err) != inbox.CodeInvalid {
			t.Errorf("Check(%q) error code %s, want invalid", c.endpoint, inbox.ErrorCode(err))
		}
	}
	for _, bad := range []string{"https://push.example.com", "push.example.com/path", "a b", "user@host", "*"} {
		if _, err := inbox.ParsePushHosts(bad); err == nil {
			t.Errorf("ParsePushHosts(%q) accepted", bad)
		}
	}
	if l, err := inbox.ParsePushHosts(" , "); err != nil || strings.Join(l.Hosts(), ",") != strings.Join(def.Hosts(), ",") {
		t.Errorf("an empty list = %v, %v; want the default", l.Hosts(), err)
	}
}

func TestPushRecipients(t *testing.T) {
	ana, ben, cy := "ana", "ben", "cy"
	agents := []inbox.Agent{{ID: ana, Active: true}, {ID: ben, Active: true}, {ID: cy, Active: false}}
	open := func(assignee *string) inbox.Conversation {
		return inbox.Conversation{Status: inbox.StatusOpen, UnreadCount: 1, AssigneeID: assignee}
	}
	cases := []struct {
		name   string
		conv   inbox.Conversation
		online []string
		want   string
	}{
		{"unassigned: every active agent", open(nil), nil, "ana,ben"},
		{"unassigned: not the ones online", open(nil), []string{ben}, "ana"},
		{"assigned", open(&ben), nil, "ben"},
		{"assignee online", open(&ben), []string{ben}, ""},
		{"assigned to someone inactive", open(&cy), nil, "ana,ben"},
		{"resolved", inbox.Conversation{Status: inbox.StatusResolved, UnreadCount: 3}, nil, ""},
		{"read", inbox.Conversation{Status: inbox.StatusOpen}, nil, ""},
		{"pending", inbox.Conversation{Status: inbox.StatusPending, UnreadCount: 1}, nil, "ana,ben"},
	}
	for _, c := range cases {
		if got := strings.Join(inbox.PushRecipients(c.conv, agents, c.online), ","); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestVAPIDKeysSurviveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "onebox.db")
	ctx := context.Background()
	keysOf := func(gen func() (inbox.VAPIDKeys, error)) inbox.VAPIDKeys {
		t.Helper()
		store, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		svc, err := inbox.NewService(inbox.Config{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		k, err := svc.EnsureVAPIDKeys(ctx, gen)
		if err != nil {
			t.Fatal(err)
		}
		if pub, err := svc.VAPIDPublicKey(ctx); err != nil || pub != k.PublicKey {
			t.Errorf("VAPIDPublicKey = %q, %v; want %q", pub, err, k.PublicKey)
		}
		return k
	}
	first := keysOf(func() (inbox.VAPIDKeys, error) { return inbox.VAPIDKeys{PublicKey: "pub-1", PrivateKey: "priv-1"}, nil })
	second := keysOf(func() (inbox.VAPIDKeys, error) {
		t.Error("new keys made although the store has some")
		return inbox.VAPIDKeys{PublicKey: "pub-2", PrivateKey: "priv-2"}, nil
	})
	if first != second || first.PublicKey != "pub-1" {
		t.Errorf("after a restart the keys are %+v, want %+v", second, first)
	}
}

func TestVAPIDKeysGeneratorFailure(t *testing.T) {
	f := newFixture(t)
	boom := errors.New("no entropy")
	if _, err := f.svc.EnsureVAPIDKeys(context.Background(), func() (inbox.VAPIDKeys, error) { return inbox.VAPIDKeys{}, boom }); !errors.Is(err, boom) {
		t.Errorf("EnsureVAPIDKeys = %v, want the generator's error", err)
	}
	if _, err := f.svc.VAPIDPublicKey(context.Background()); inbox.ErrorCode(err) != inbox.CodeUnavailable {
		t.Errorf("VAPIDPublicKey without keys = %v, want unavailable", err)
	}
}

func TestPlanPushWithoutDevices(t *testing.T) {
	f := newFixture(t)
	r := f.receive(t, "+15550001", "x1", "hello")
	plan, err := f.svc.PlanPush(context.Background(), f.admin.Tenant.ID, r.Message.ConversationID, nil)
	if err != nil || len(plan.Devices) != 0 || len(plan.Stale) != 0 {
		t.Errorf("plan for a tenant without devices = %+v, %v; want nobody", plan, err)
	}
	hosts, _ := inbox.ParsePushHosts("push.test")
	if _, err := f.svc.SubscribeWebPush(context.Background(), f.agent, inbox.WebPushSubscription{
		Endpoint: "https://push.test/1", P256dh: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
		Auth: "BTBZMqHH6r4Tts7J_aSIgg"}, hosts); err != nil {
		t.Fatal(err)
	}
	plan, err = f.svc.PlanPush(context.Background(), f.admin.Tenant.ID, r.Message.ConversationID, nil)
	if err != nil || len(plan.Devices) != 1 || plan.Devices[0].AgentID != f.agent.Agent.ID {
		t.Errorf("plan = %+v, %v; want the agent's device", plan, err)
	}
	if _, err := f.svc.PlanPush(context.Background(), f.admin.Tenant.ID, "no-such-conversation", nil); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Errorf("plan for a missing conversation: %v, want not found", err)
	}
}
