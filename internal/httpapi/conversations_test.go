package httpapi

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

type convJSON struct {
	ID      string `json:"id"`
	Channel struct {
		ID, Type, Name string
	} `json:"channel"`
	Contact struct {
		ID, Name, Handle string
	} `json:"contact"`
	Status         string     `json:"status"`
	AssigneeID     *string    `json:"assignee_id"`
	Labels         []string   `json:"labels"`
	UnreadCount    int        `json:"unread_count"`
	SnoozedUntil   *time.Time `json:"snoozed_until"`
	LastMessage    *msgJSON   `json:"last_message"`
	LastActivityAt time.Time  `json:"last_activity_at"`
}

func (h *harness) conversation(token, id string) convJSON {
	h.t.Helper()
	var got struct {
		Conversation convJSON `json:"conversation"`
	}
	h.want(h.req("GET", "/api/v1/conversations/"+id, token, nil), 200).json(h.t, &got)
	return got.Conversation
}

func TestConversationGetAndList(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	conv, msg := h.receive(tm, "+15550001", "Where is my order?")

	c := h.conversation(tm.agentToken, conv)
	if c.ID != conv || c.Channel.ID != tm.channelID || c.Channel.Type != "demo" || c.Contact.Handle != "+15550001" ||
		c.Status != "open" || c.AssigneeID != nil || c.Labels == nil || c.UnreadCount != 1 ||
		c.LastMessage == nil || c.LastMessage.ID != msg {
		t.Errorf("conversation = %+v", c)
	}
	checkErr(t, h.req("GET", "/api/v1/conversations/nope", tm.agentToken, nil), 404, "not_found")

	var list struct {
		Conversations []convJSON `json:"conversations"`
		NextCursor    *string    `json:"next_cursor"`
	}
	r := h.want(h.req("GET", "/api/v1/conversations", tm.agentToken, nil), 200)
	r.json(t, &list)
	if len(list.Conversations) != 1 || list.Conversations[0].ID != conv || list.NextCursor != nil {
		t.Errorf("list = %s", r.body)
	}
	if !strings.Contains(string(r.body), `"next_cursor":null`) {
		t.Errorf("the last page must say next_cursor: null: %s", r.body)
	}
	for q, n := range map[string]int{
		"status=open": 1, "status=resolved": 0, "assignee=none": 1, "assignee=me": 0,
		"q=ORDER": 1, "q=refund": 0, "q=%2B1555": 1, "label=vip": 0,
	} {
		r := h.want(h.req("GET", "/api/v1/conversations?"+q, tm.agentToken, nil), 200)
		r.json(t, &list)
		if len(list.Conversations) != n {
			t.Errorf("?%s: %d conversations, want %d", q, len(list.Conversations), n)
		}
		if n == 0 && !strings.Contains(string(r.body), `"conversations":[]`) {
			t.Errorf("?%s: an empty list must be [] not null: %s", q, r.body)
		}
	}
	for _, q := range []string{"status=closed", "limit=abc", "limit=0", "limit=-1", "limit=1.5", "cursor=%25%25%25"} {
		checkErr(t, h.req("GET", "/api/v1/conversations?"+q, tm.agentToken, nil), 400, "invalid")
	}
}

func TestConversationPagination(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	want := map[string]bool{}
	for i := 0; i < 7; i++ {
		conv, _ := h.receive(tm, fmt.Sprintf("+1555000%d", i), "hi")
		want[conv] = true
	}
	// A conversation that moves to the top while paging must not make the
	// walk skip anything it had not yet reached.
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	var last time.Time
	for {
		path := "/api/v1/conversations?limit=3"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Conversations []convJSON `json:"conversations"`
			NextCursor    *string    `json:"next_cursor"`
		}
		h.want(h.req("GET", path, tm.agentToken, nil), 200).json(t, &page)
		pages++
		for _, c := range page.Conversations {
			if seen[c.ID] {
				t.Errorf("conversation %s on two pages", c.ID)
			}
			seen[c.ID] = true
			if !last.IsZero() && c.LastActivityAt.After(last) {
				t.Errorf("not newest first: %v after %v", c.LastActivityAt, last)
			}
			last = c.LastActivityAt
		}
		if page.NextCursor == nil {
			if len(page.Conversations) == 0 && pages > 1 {
				t.Error("the last page is empty: next_cursor should have been null one page earlier")
			}
			break
		}
		if len(page.Conversations) != 3 {
			t.Errorf("a page with a next cursor has %d conversations, want 3", len(page.Conversations))
		}
		cursor = *page.NextCursor
		if pages > 10 {
			t.Fatal("cursor walk does not end")
		}
	}
	if pages != 3 || len(seen) != len(want) {
		t.Errorf("walked %d pages and %d conversations, want 3 and %d", pages, len(seen), len(want))
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("conversation %s skipped", id)
		}
	}
	// limit above the maximum is clamped, not refused.
	h.want(h.req("GET", "/api/v1/conversations?limit=5000", tm.agentToken, nil), 200)
}

func TestConversationUpdate(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	conv, _ := h.receive(tm, "+15550001", "hello")
	path := "/api/v1/conversations/" + conv
	patch := func(body any) convJSON {
		t.Helper()
		var got struct {
			Conversation convJSON `json:"conversation"`
		}
		h.want(h.req("PATCH", path, tm.agentToken, body), 200).json(t, &got)
		return got.Conversation
	}

	c := patch(map[string]any{"assignee_id": tm.agentID, "labels": []string{"vip", " VIP ", "billing"}, "status": "pending"})
	if c.AssigneeID == nil || *c.AssigneeID != tm.agentID || c.Status != "pending" || strings.Join(c.Labels, ",") != "vip,billing" {
		t.Errorf("after first patch: %+v", c)
	}
	// Absent fields are left alone.
	c = patch(map[string]any{"status": "open"})
	if c.AssigneeID == nil || len(c.Labels) != 2 {
		t.Errorf("a patch of status changed other fields: %+v", c)
	}
	// null unassigns.
	c = patch(raw(`{"assignee_id":null}`))
	if c.AssigneeID != nil || c.Status != "open" {
		t.Errorf("null did not unassign: %+v", c)
	}
	until := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	c = patch(map[string]any{"snoozed_until": until.Format(time.RFC3339)})
	if c.Status != "snoozed" || c.SnoozedUntil == nil || !c.SnoozedUntil.Equal(until) {
		t.Errorf("snooze: %+v", c)
	}
	c = patch(raw(`{"status":"open","snoozed_until":null}`))
	if c.Status != "open" || c.SnoozedUntil != nil {
		t.Errorf("unsnooze: %+v", c)
	}
	c = patch(map[string]any{"labels": []string{}})
	if c.Labels == nil || len(c.Labels) != 0 {
		t.Errorf("labels not cleared: %+v", c)
	}

	before := h.head(tm.agentToken)
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"malformed", raw(`{"status":`), ""},
		{"array", raw(`[]`), ""},
		{"status unknown", map[string]any{"status": "closed"}, "status"},
		{"status not a string", map[string]any{"status": 5}, "status"},
		{"status null", raw(`{"status":null}`), "status"},
		{"assignee not a string", map[string]any{"assignee_id": 5}, "assignee_id"},
		{"assignee empty", map[string]any{"assignee_id": ""}, "assignee_id"},
		{"assignee unknown", map[string]any{"assignee_id": "nobody"}, "assignee_id"},
		{"labels not an array", map[string]any{"labels": "vip"}, "labels"},
		{"labels of numbers", map[string]any{"labels": []int{1}}, "labels"},
		{"labels null", raw(`{"labels":null}`), "labels"},
		{"empty label", map[string]any{"labels": []string{" "}}, "label"},
		{"snooze not a time", map[string]any{"snoozed_until": "tomorrow"}, "snoozed_until"},
		{"snooze a number", map[string]any{"snoozed_until": 1700000000}, "snoozed_until"},
		{"snooze in the past", map[string]any{"snoozed_until": "2001-01-01T00:00:00Z"}, "snoozed_until"},
		{"snooze without time", map[string]any{"status": "snoozed"}, "snoozed_until"},
		{"snooze with other status", map[string]any{"status": "open", "snoozed_until": until.Format(time.RFC3339)}, "snoozed_until"},
		// One bad field spoils the whole patch.
		{"good and bad", map[string]any{"status": "resolved", "labels": "x"}, "labels"},
	} {
		r := h.req("PATCH", path, tm.agentToken, tc.body)
		checkErr(t, r, 400, "invalid")
		if tc.field != "" && r.status == 400 && !strings.Contains(errMessage(t, r), tc.field) {
			t.Errorf("%s: message %q does not name %s", tc.name, errMessage(t, r), tc.field)
		}
	}
	checkErr(t, h.req("PATCH", "/api/v1/conversations/nope", tm.agentToken, map[string]any{"status": "open"}), 404, "not_found")
	h.unchanged(tm.agentToken, before)
	if c := h.conversation(tm.agentToken, conv); c.Status != "open" || len(c.Labels) != 0 {
		t.Errorf("failed patches changed the conversation: %+v", c)
	}
}

func TestConversationRead(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	conv, _ := h.receive(tm, "+15550001", "one")
	h.receive(tm, "+15550001", "two")
	if n := h.conversation(tm.agentToken, conv).UnreadCount; n != 2 {
		t.Fatalf("unread = %d, want 2", n)
	}
	h.want(h.req("POST", "/api/v1/conversations/"+conv+"/read", tm.agentToken, nil), 204)
	if n := h.conversation(tm.agentToken, conv).UnreadCount; n != 0 {
		t.Errorf("unread after read = %d, want 0", n)
	}
	before := h.head(tm.agentToken)
	h.want(h.req("POST", "/api/v1/conversations/"+conv+"/read", tm.agentToken, nil), 204)
	h.unchanged(tm.agentToken, before) // already read: nothing to write
	checkErr(t, h.req("POST", "/api/v1/conversations/nope/read", tm.agentToken, nil), 404, "not_found")
}
