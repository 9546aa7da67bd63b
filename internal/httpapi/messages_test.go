package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

type msgJSON struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	ClientID       string `json:"client_id"`
	Direction      string `json:"direction"`
	Author         struct {
		Type, ID string
	} `json:"author"`
	Kind   string `json:"kind"`
	Text   string `json:"text"`
	Status string `json:"status"`
	Error  *struct {
		Code, Message string
	} `json:"error"`
	CreatedAt time.Time `json:"created_at"`
}

func (h *harness) messages(token, conv, query string) []msgJSON {
	h.t.Helper()
	var got struct {
		Messages []msgJSON `json:"messages"`
	}
	h.want(h.req("GET", "/api/v1/conversations/"+conv+"/messages"+query, token, nil), 200).json(h.t, &got)
	return got.Messages
}

func TestMessageCreate(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	conv, _ := h.receive(tm, "+15550001", "hello")
	path := "/api/v1/conversations/" + conv + "/messages"
	cid := newClientID()

	var first, again struct {
		Message msgJSON `json:"message"`
	}
	h.want(h.req("POST", path, tm.agentToken, map[string]any{"client_id": cid, "text": "  Hi! How can I help?  "}), 201).json(t, &first)
	m := first.Message
	if m.ID == "" || m.ConversationID != conv || m.ClientID != cid || m.Direction != "out" || m.Kind != "text" ||
		m.Text != "Hi! How can I help?" || m.Status != "pending" || m.Author.Type != "agent" || m.Author.ID != tm.agentID {
		t.Errorf("message = %+v", m)
	}
	before := h.head(tm.agentToken)
	h.want(h.req("POST", path, tm.agentToken, map[string]any{"client_id": cid, "text": "Hi! How can I help?"}), 200).json(t, &again)
	if again.Message.ID != m.ID {
		t.Errorf("repeat made message %s, want %s", again.Message.ID, m.ID)
	}
	h.unchanged(tm.agentToken, before)
	msgs := h.messages(tm.agentToken, conv, "")
	if len(msgs) != 2 || msgs[1].ID != m.ID {
		t.Errorf("messages = %+v, want the customer's then one reply", msgs)
	}

	var note struct {
		Message msgJSON `json:"message"`
	}
	h.want(h.req("POST", path, tm.adminToken, map[string]any{"client_id": newClientID(), "text": "VIP customer", "private": true}), 201).json(t, &note)
	if note.Message.Kind != "note" {
		t.Errorf("private message kind = %q, want note", note.Message.Kind)
	}

	other, _ := h.receive(tm, "+15550002", "me too")
	before = h.head(tm.agentToken)
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"malformed", raw(`{"client_id":"x","text":"a"`), ""},
		{"client_id missing", map[string]any{"text": "a"}, "client_id"},
		{"client_id not a UUID", map[string]any{"client_id": "abc", "text": "a"}, "client_id"},
		{"client_id a number", map[string]any{"client_id": 5, "text": "a"}, "client_id"},
		{"text a number", map[string]any{"client_id": newClientID(), "text": 5}, "text"},
		{"text empty", map[string]any{"client_id": newClientID(), "text": "   "}, "text"},
		{"text too long", map[string]any{"client_id": newClientID(), "text": strings.Repeat("x", inbox.MaxTextLen+1)}, "text"},
		{"private not a bool", map[string]any{"client_id": newClientID(), "text": "a", "private": "yes"}, "private"},
		{"unknown media", map[string]any{"client_id": newClientID(), "media_id": "m1"}, "media_id"},
	} {
		r := h.req("POST", path, tm.agentToken, tc.body)
		checkErr(t, r, 400, "invalid")
		if tc.field != "" && r.status == 400 && !strings.Contains(errMessage(t, r), tc.field) {
			t.Errorf("%s: message %q does not name %s", tc.name, errMessage(t, r), tc.field)
		}
	}
	checkErr(t, h.req("POST", "/api/v1/conversations/nope/messages", tm.agentToken,
		map[string]any{"client_id": newClientID(), "text": "a"}), 404, "not_found")
	// A client_id already used in another conversation is a conflict.
	checkErr(t, h.req("POST", "/api/v1/conversations/"+other+"/messages", tm.agentToken,
		map[string]any{"client_id": cid, "text": "a"}), 409, "conflict")
	h.unchanged(tm.agentToken, before)
	if n := len(h.messages(tm.agentToken, conv, "")); n != 3 {
		t.Errorf("%d messages after failed sends, want 3", n)
	}
}

func TestMessagesList(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	var ids []string
	var conv string
	for _, text := range []string{"m1", "m2", "m3", "m4", "m5"} {
		c, id := h.receive(tm, "+15550001", text)
		conv, ids = c, append(ids, id)
	}
	texts := func(ms []msgJSON) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Text)
		}
		return strings.Join(s, ",")
	}
	if got := texts(h.messages(tm.agentToken, conv, "")); got != "m1,m2,m3,m4,m5" {
		t.Errorf("all = %s", got)
	}
	if got := texts(h.messages(tm.agentToken, conv, "?limit=2")); got != "m4,m5" {
		t.Errorf("newest 2 = %s, want m4,m5", got)
	}
	if got := texts(h.messages(tm.agentToken, conv, "?limit=2&before="+ids[3])); got != "m2,m3" {
		t.Errorf("2 before m4 = %s, want m2,m3", got)
	}
	if got := h.messages(tm.agentToken, conv, "?before="+ids[0]); len(got) != 0 {
		t.Errorf("before the first = %+v, want none", got)
	}
	r := h.want(h.req("GET", "/api/v1/conversations/"+conv+"/messages?before="+ids[0], tm.agentToken, nil), 200)
	if !strings.Contains(string(r.body), `"messages":[]`) {
		t.Errorf("an empty page must be []: %s", r.body)
	}

	other, otherMsg := h.receive(tm, "+15550002", "elsewhere")
	checkErr(t, h.req("GET", "/api/v1/conversations/"+conv+"/messages?before=nope", tm.agentToken, nil), 404, "not_found")
	checkErr(t, h.req("GET", "/api/v1/conversations/"+conv+"/messages?before="+otherMsg, tm.agentToken, nil), 404, "not_found")
	checkErr(t, h.req("GET", "/api/v1/conversations/nope/messages", tm.agentToken, nil), 404, "not_found")
	checkErr(t, h.req("GET", "/api/v1/conversations/"+other+"/messages?limit=x", tm.agentToken, nil), 400, "invalid")
}

func TestMessageRetry(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	conv, inbound := h.receive(tm, "+15550001", "hello")
	var sent struct {
		Message msgJSON `json:"message"`
	}
	h.want(h.req("POST", "/api/v1/conversations/"+conv+"/messages", tm.agentToken,
		map[string]any{"client_id": newClientID(), "text": "reply"}), 201).json(t, &sent)
	retry := "/api/v1/messages/" + sent.Message.ID + "/retry"

	before := h.head(tm.agentToken)
	checkErr(t, h.req("POST", retry, tm.agentToken, nil), 409, "conflict") // pending, not failed
	checkErr(t, h.req("POST", "/api/v1/messages/"+inbound+"/retry", tm.agentToken, nil), 409, "conflict")
	checkErr(t, h.req("POST", "/api/v1/messages/nope/retry", tm.agentToken, nil), 404, "not_found")
	h.unchanged(tm.agentToken, before)

	// Fail it the way the outbox worker would, for good.
	ctx := context.Background()
	due, _, err := h.svc.Due(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due = %d items, %v; want the reply", len(due), err)
	}
	if err := h.svc.SendResult(ctx, due[0].Item, "", &inbox.SendError{Code: "rejected", Message: "no"}); err != nil {
		t.Fatalf("send result: %v", err)
	}
	if m := h.messages(tm.agentToken, conv, "")[1]; m.Status != "failed" || m.Error == nil {
		t.Fatalf("message after failure = %+v", m)
	}

	var got struct {
		Message msgJSON `json:"message"`
	}
	h.want(h.req("POST", retry, tm.agentToken, nil), 200).json(t, &got)
	if got.Message.ID != sent.Message.ID || got.Message.Status != "pending" || got.Message.Error != nil {
		t.Errorf("retried = %+v, want the same message pending again", got.Message)
	}
}

// TestMessageCreateConcurrentRepeats: a client retrying while its first
// attempt is still in flight gets one message, one 201, and 200s.
func TestMessageCreateConcurrentRepeats(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	conv, _ := h.receive(tm, "+15550001", "hello")
	body := `{"client_id":"` + newClientID() + `","text":"once"}`
	const n = 8
	type result struct {
		status int
		id     string
		err    error
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() {
			req, _ := http.NewRequest("POST", h.url+"/api/v1/conversations/"+conv+"/messages", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tm.agentToken)
			resp, err := h.client.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			var got struct {
				Message struct {
					ID string `json:"id"`
				} `json:"message"`
			}
			err = json.NewDecoder(resp.Body).Decode(&got)
			results <- result{resp.StatusCode, got.Message.ID, err}
		}()
	}
	created, ids := 0, map[string]bool{}
	for i := 0; i < n; i++ {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		switch r.status {
		case 201:
			created++
		case 200:
		default:
			t.Errorf("status %d", r.status)
		}
		ids[r.id] = true
	}
	if created != 1 || len(ids) != 1 {
		t.Errorf("%d created, %d distinct ids; want 1 and 1", created, len(ids))
	}
	if got := len(h.messages(tm.agentToken, conv, "")); got != 2 {
		t.Errorf("%d messages, want the customer's and one reply", got)
	}
}
