package inbox

import (
	"testing"
	"time"
)

func TestAdvanceStatus(t *testing.T) {
	tests := []struct {
		cur, next, want MessageStatus
		changed         bool
	}{
		{MsgPending, MsgSent, MsgSent, true},
		{MsgPending, MsgDelivered, MsgDelivered, true},
		{MsgPending, MsgRead, MsgRead, true},
		{MsgSent, MsgDelivered, MsgDelivered, true},
		{MsgDelivered, MsgRead, MsgRead, true},
		{MsgSent, MsgSent, MsgSent, false},
		{MsgDelivered, MsgSent, MsgDelivered, false},
		{MsgRead, MsgDelivered, MsgRead, false},
		{MsgRead, MsgSent, MsgRead, false},
		{MsgRead, MsgPending, MsgRead, false},
		{MsgPending, MsgFailed, MsgFailed, true},
		{MsgSent, MsgFailed, MsgFailed, true},
		{MsgDelivered, MsgFailed, MsgDelivered, false},
		{MsgRead, MsgFailed, MsgRead, false},
		{MsgFailed, MsgFailed, MsgFailed, false},
		{MsgFailed, MsgDelivered, MsgDelivered, true},
		{MsgFailed, MsgPending, MsgFailed, false},
		{MsgSent, MsgReceived, MsgSent, false},
		{MsgSent, "bogus", MsgSent, false},
	}
	for _, tt := range tests {
		got, changed := AdvanceStatus(tt.cur, tt.next)
		if got != tt.want || changed != tt.changed {
			t.Errorf("AdvanceStatus(%s, %s) = %s, %v; want %s, %v", tt.cur, tt.next, got, changed, tt.want, tt.changed)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestApplyPatch(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	earlier := now.Add(-time.Hour)
	agent := "agent-1"
	base := func() Conversation {
		return Conversation{ID: "c", Status: StatusOpen, Labels: []string{}}
	}
	snoozed := func() Conversation {
		c := base()
		c.Status, c.SnoozedUntil = StatusSnoozed, &later
		return c
	}
	tests := []struct {
		name       string
		start      Conversation
		patch      Patch
		wantErr    bool
		wantChange bool
		check      func(t *testing.T, c Conversation)
	}{
		{name: "resolve", start: base(), patch: Patch{Status: ptr(StatusResolved)}, wantChange: true,
			check: func(t *testing.T, c Conversation) { wantStatus(t, c, StatusResolved) }},
		{name: "reopen resolved", start: Conversation{Status: StatusResolved}, patch: Patch{Status: ptr(StatusOpen)}, wantChange: true,
			check: func(t *testing.T, c Conversation) { wantStatus(t, c, StatusOpen) }},
		{name: "pending", start: base(), patch: Patch{Status: ptr(StatusPending)}, wantChange: true},
		{name: "same status is no change", start: base(), patch: Patch{Status: ptr(StatusOpen)}},
		{name: "unknown status", start: base(), patch: Patch{Status: ptr(Status("closed"))}, wantErr: true},
		{name: "snooze with time", start: base(), patch: Patch{Status: ptr(StatusSnoozed), SnoozedSet: true, SnoozedUntil: &later}, wantChange: true,
			check: func(t *testing.T, c Conversation) {
				wantStatus(t, c, StatusSnoozed)
				if c.SnoozedUntil == nil || !c.SnoozedUntil.Equal(later) {
					t.Errorf("snoozed_until = %v, want %v", c.SnoozedUntil, later)
				}
			}},
		{name: "snoozed_until alone snoozes", start: base(), patch: Patch{SnoozedSet: true, SnoozedUntil: &later}, wantChange: true,
			check: func(t *testing.T, c Conversation) { wantStatus(t, c, StatusSnoozed) }},
		{name: "snooze without time", start: base(), patch: Patch{Status: ptr(StatusSnoozed)}, wantErr: true},
		{name: "snooze into the past", start: base(), patch: Patch{Status: ptr(StatusSnoozed), SnoozedSet: true, SnoozedUntil: &earlier}, wantErr: true},
		{name: "snoozed_until with other status", start: base(), patch: Patch{Status: ptr(StatusResolved), SnoozedSet: true, SnoozedUntil: &later}, wantErr: true},
		{name: "leaving snooze clears time", start: snoozed(), patch: Patch{Status: ptr(StatusOpen)}, wantChange: true,
			check: func(t *testing.T, c Conversation) {
				if c.SnoozedUntil != nil {
					t.Errorf("snoozed_until = %v, want nil", c.SnoozedUntil)
				}
			}},
		{name: "clearing snoozed_until wakes", start: snoozed(), patch: Patch{SnoozedSet: true}, wantChange: true,
			check: func(t *testing.T, c Conversation) {
				wantStatus(t, c, StatusOpen)
				if c.SnoozedUntil != nil {
					t.Errorf("snoozed_until = %v, want nil", c.SnoozedUntil)
				}
			}},
		{name: "assign", start: base(), patch: Patch{AssigneeSet: true, AssigneeID: &agent}, wantChange: true,
			check: func(t *testing.T, c Conversation) {
				if c.AssigneeID == nil || *c.AssigneeID != agent {
					t.Errorf("assignee = %v", c.AssigneeID)
				}
			}},
		{name: "unassign", start: Conversation{Status: StatusOpen, AssigneeID: &agent}, patch: Patch{AssigneeSet: true}, wantChange: true,
			check: func(t *testing.T, c Conversation) {
				if c.AssigneeID != nil {
					t.Errorf("assignee = %v, want nil", *c.AssigneeID)
				}
			}},
		{name: "labels normalised", start: base(), patch: Patch{Labels: &[]string{" VIP ", "vip", "refund"}}, wantChange: true,
			check: func(t *testing.T, c Conversation) {
				if len(c.Labels) != 2 || c.Labels[0] != "VIP" || c.Labels[1] != "refund" {
					t.Errorf("labels = %q", c.Labels)
				}
			}},
		{name: "empty label", start: base(), patch: Patch{Labels: &[]string{"ok", " "}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.start
			before := c
			changed, err := ApplyPatch(&c, tt.patch, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if ErrorCode(err) != CodeInvalid {
					t.Errorf("code = %s, want invalid", ErrorCode(err))
				}
				if !conversationEqual(before, c) {
					t.Errorf("a refused patch changed the conversation")
				}
				return
			}
			if changed != tt.wantChange {
				t.Errorf("changed = %v, want %v", changed, tt.wantChange)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func wantStatus(t *testing.T, c Conversation, s Status) {
	t.Helper()
	if c.Status != s {
		t.Errorf("status = %s, want %s", c.Status, s)
	}
}

func TestOnInboundReopens(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	for _, start := range []Status{StatusOpen, StatusPending, StatusSnoozed, StatusResolved} {
		c := Conversation{Status: start, UnreadCount: 2}
		if start == StatusSnoozed {
			c.SnoozedUntil = &later
		}
		m := Message{ID: "m", CreatedAt: now, Direction: DirectionIn}
		OnInbound(&c, m)
		if c.Status != StatusOpen || c.SnoozedUntil != nil {
			t.Errorf("from %s: status %s snoozed %v, want open and no snooze", start, c.Status, c.SnoozedUntil)
		}
		if c.UnreadCount != 3 || c.LastMessage == nil || c.LastMessage.ID != "m" || !c.LastActivityAt.Equal(now) {
			t.Errorf("from %s: unread %d last %v activity %v", start, c.UnreadCount, c.LastMessage, c.LastActivityAt)
		}
	}
}

func TestWake(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := now.Add(time.Minute)
	c := Conversation{Status: StatusSnoozed, SnoozedUntil: &at}
	if Wake(&c, now) {
		t.Fatal("woke before its time")
	}
	if !Wake(&c, at) || c.Status != StatusOpen || c.SnoozedUntil != nil {
		t.Fatalf("at its time: woke=%v status=%s", c.Status == StatusOpen, c.Status)
	}
	r := Conversation{Status: StatusResolved}
	if Wake(&r, at) || r.Status != StatusResolved {
		t.Fatal("a resolved conversation must not be woken")
	}
}

func TestBackoff(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= MaxSendAttempts; n++ {
		d := Backoff(n, 0)
		if d < prev || d > 3*time.Hour {
			t.Fatalf("Backoff(%d) = %v after %v", n, d, prev)
		}
		prev = d
	}
	if got := Backoff(1, time.Minute); got != time.Minute {
		t.Errorf("Retry-After not honoured: %v", got)
	}
}

func TestAccessKeyShape(t *testing.T) {
	raw, prefix, hash := NewAccessKey()
	if len(raw) != len(keyTag)+32 || prefix != raw[:PrefixLen] || hash != HashSecret(raw) || hash == raw {
		t.Fatalf("key %q prefix %q hash %q", raw, prefix, hash)
	}
	other, _, _ := NewAccessKey()
	if other == raw {
		t.Fatal("two keys are equal")
	}
	if !plausibleSecret(raw, keyTag) || plausibleSecret("obx_short", keyTag) || plausibleSecret("x"+raw, keyTag) {
		t.Fatal("plausibleSecret misjudges")
	}
}

func TestMatch(t *testing.T) {
	s := Session{Hash: "h", KeyID: "k", AgentID: "a"}
	if (Match{}).Matches(s) {
		t.Error("zero match selected a session")
	}
	if !(Match{KeyID: "k"}).Matches(s) || (Match{KeyID: "x"}).Matches(s) {
		t.Error("key match")
	}
	if !(Match{AgentID: "a", SessionHash: "h"}).Matches(s) || (Match{AgentID: "a", SessionHash: "z"}).Matches(s) {
		t.Error("combined match")
	}
}
