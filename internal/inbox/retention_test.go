package inbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

func TestRetentionPurgesExactlyWhatIsOlder(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t0 := f.clock()

	a := f.receive(t, "+1001", "a0", "OLD-A0").Message
	b := f.receive(t, "+1002", "b0", "OLD-B0").Message
	f.advance(3*24*time.Hour - time.Second)
	f.receive(t, "+1001", "a1", "OLD-A1") // one second older than the cutoff
	f.advance(time.Second)
	edge := f.receive(t, "+1001", "a2", "EDGE-A2").Message // exactly at the cutoff: kept
	f.advance(7 * 24 * time.Hour)
	fresh := f.receive(t, "+1001", "a3", "NEW-A3").Message
	if got := f.clock().Sub(t0); got != 10*24*time.Hour {
		t.Fatalf("clock moved %v", got)
	}

	if _, err := f.svc.SetRetention(ctx, f.admin, inbox.RetentionSettings{MessagesDays: -1}); inbox.ErrorCode(err) != inbox.CodeInvalid {
		t.Errorf("negative days: %v", err)
	}
	if _, err := f.svc.SetRetention(ctx, f.agent, inbox.RetentionSettings{MessagesDays: 7}); inbox.ErrorCode(err) != inbox.CodeForbidden {
		t.Errorf("agent sets retention: %v", err)
	}
	// Forever (the default) purges nothing.
	if rs, err := f.svc.Retention(ctx, f.admin); err != nil || rs.MessagesDays != 0 {
		t.Fatalf("default retention: %+v, %v", rs, err)
	}
	if err := f.svc.PurgeExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := f.svc.ListMessages(ctx, f.admin, a.ConversationID, "", 100); len(msgs) != 4 {
		t.Fatalf("purge with no policy left %d of 4 messages", len(msgs))
	}

	if rs, err := f.svc.SetRetention(ctx, f.admin, inbox.RetentionSettings{MessagesDays: 7}); err != nil || rs.MessagesDays != 7 {
		t.Fatalf("set retention: %+v, %v", rs, err)
	}
	if err := f.svc.PurgeExpired(ctx); err != nil {
		t.Fatal(err)
	}
	msgs, err := f.svc.ListMessages(ctx, f.admin, a.ConversationID, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range msgs {
		texts = append(texts, m.Text)
	}
	if len(msgs) != 2 || !(msgs[0].ID == edge.ID && msgs[1].ID == fresh.ID || msgs[1].ID == edge.ID && msgs[0].ID == fresh.ID) {
		t.Errorf("conversation A keeps %v, want the edge and the new message", texts)
	}
	if msgs, _ := f.svc.ListMessages(ctx, f.admin, b.ConversationID, "", 100); len(msgs) != 0 {
		t.Errorf("conversation B keeps %d messages", len(msgs))
	}
	if c := f.conversation(t, b.ConversationID); c.LastMessage != nil {
		t.Errorf("conversation B still shows its purged last message %q", c.LastMessage.Text)
	}
	if c := f.conversation(t, a.ConversationID); c.LastMessage == nil || c.LastMessage.ID != fresh.ID {
		t.Errorf("conversation A lost its recent last message")
	}

	events, _, err := f.store.Events(ctx, f.admin.Tenant.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		d := string(e.Data)
		if strings.Contains(d, "OLD-") {
			t.Errorf("event %d (%s at %s) still carries a purged message", e.Seq, e.Type, e.At)
		}
	}
	sawNew := false
	for _, e := range events {
		sawNew = sawNew || strings.Contains(string(e.Data), "NEW-A3")
	}
	if !sawNew {
		t.Error("the recent message's event was emptied too")
	}

	log, _, err := f.svc.AuditLog(ctx, f.admin, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if log[0].Action != inbox.AuditRetentionPurged || log[0].Detail["messages"] != 3 || log[0].Actor.Type != "system" ||
		log[1].Action != inbox.AuditRetentionChanged || log[1].Actor.ID != f.admin.Agent.ID {
		t.Errorf("audit: %+v", log[:2])
	}
	// A second run finds nothing and records nothing.
	if err := f.svc.PurgeExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _, _ := f.svc.AuditLog(ctx, f.admin, 10, ""); again[0].ID != log[0].ID {
		t.Errorf("an empty purge was recorded: %+v", again[0])
	}
}

func TestAccessDataIsKeptThirtyDays(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin := f.admin
	admin.IP = "192.0.2.7"
	if _, err := f.svc.SetRetention(ctx, admin, inbox.RetentionSettings{MessagesDays: 90}); err != nil {
		t.Fatal(err)
	}
	f.advance(29 * 24 * time.Hour)
	if s, ips, err := f.svc.PurgeAccessData(ctx); err != nil || s != 0 || ips != 0 {
		t.Fatalf("at 29 days: %d sessions, %d addresses, %v", s, ips, err)
	}
	f.advance(2 * 24 * time.Hour)
	// A session started now is live and stays.
	_, _, key, err := f.svc.CreateAgent(ctx, f.admin, inbox.NewAgent{Name: "Late", Role: inbox.RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	_, tok, err := f.svc.SignIn(ctx, key, inbox.Device{})
	if err != nil {
		t.Fatal(err)
	}
	s, ips, err := f.svc.PurgeAccessData(ctx)
	if err != nil || s != 2 || ips != 1 {
		t.Fatalf("at 31 days: %d sessions (want the 2 expired), %d addresses (want 1), %v", s, ips, err)
	}
	if _, err := f.svc.Authenticate(ctx, tok); err != nil {
		t.Errorf("the live session went too: %v", err)
	}
	log, _, err := f.svc.AuditLog(ctx, f.admin, 50, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log {
		if e.Action == inbox.AuditRetentionChanged && e.IP != "" {
			t.Errorf("old entry keeps IP %q", e.IP)
		}
	}
}
