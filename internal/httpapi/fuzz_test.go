package httpapi

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// FuzzConversationPatch feeds arbitrary bodies through the PATCH parser and
// the domain's rules: no input panics, every refusal is a clear 400, and
// whatever is accepted leaves the conversation in a valid state.
func FuzzConversationPatch(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"status":"resolved"}`, `{"status":null}`, `{"assignee_id":null}`, `{"assignee_id":"a1"}`,
		`{"labels":["vip"," VIP ","refund"]}`, `{"labels":null}`, `{"labels":[""]}`,
		`{"snoozed_until":"2030-01-02T03:04:05Z"}`, `{"snoozed_until":null}`, `{"status":"snoozed"}`,
		`{"status":"open","snoozed_until":"2030-01-02T03:04:05Z"}`, `{"snoozed_until":"yesterday"}`,
		`{"status":5}`, `{"labels":"vip"}`, `[1,2]`, `{"status":"snoozed","snoozed_until":"1999-01-01T00:00:00Z"}`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) != nil {
			return
		}
		patch, err := parsePatch(fields)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 || ae.code != codeInvalid || ae.message == "" {
				t.Fatalf("parse error %v is not a 400 invalid with a message", err)
			}
			return
		}
		c := inbox.Conversation{ID: "c", Status: inbox.StatusOpen, Labels: []string{}}
		before := c
		changed, err := inbox.ApplyPatch(&c, patch, now)
		if err != nil {
			if inbox.ErrorCode(err) != inbox.CodeInvalid {
				t.Fatalf("rule error %v is not invalid", err)
			}
			if c.Status != before.Status || c.SnoozedUntil != nil || len(c.Labels) != 0 {
				t.Fatalf("a refused patch changed the conversation: %+v", c)
			}
			return
		}
		if !c.Status.Valid() {
			t.Fatalf("status %q after %s", c.Status, body)
		}
		if (c.Status == inbox.StatusSnoozed) != (c.SnoozedUntil != nil) {
			t.Fatalf("status %s with snoozed_until %v after %s", c.Status, c.SnoozedUntil, body)
		}
		if c.SnoozedUntil != nil && !c.SnoozedUntil.After(now) {
			t.Fatalf("snoozed into the past after %s", body)
		}
		if len(c.Labels) > inbox.MaxLabels {
			t.Fatalf("%d labels after %s", len(c.Labels), body)
		}
		if !changed && (c.Status != before.Status || len(c.Labels) != len(before.Labels)) {
			t.Fatalf("reported no change but changed after %s", body)
		}
	})
}
