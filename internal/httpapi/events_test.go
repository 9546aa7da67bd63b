package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestEventsList(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	h.receive(tm, "+15550001", "one")
	h.receive(tm, "+15550001", "two")
	head := h.head(tm.agentToken)
	if head < 4 {
		t.Fatalf("head = %d after two messages, want at least 4", head)
	}

	type page struct {
		Events []struct {
			Seq  uint64          `json:"seq"`
			Type string          `json:"type"`
			At   string          `json:"at"`
			Data json.RawMessage `json:"data"`
		} `json:"events"`
		Head  uint64 `json:"head"`
		Reset bool   `json:"reset"`
	}
	var all page
	h.want(h.req("GET", "/api/v1/events", tm.agentToken, nil), 200).json(t, &all)
	if all.Head != head || uint64(len(all.Events)) != head {
		t.Fatalf("since=0: %d events, head %d; want %d", len(all.Events), all.Head, head)
	}
	for i, e := range all.Events {
		if e.Seq != uint64(i+1) || e.Type == "" || e.At == "" || len(e.Data) == 0 {
			t.Errorf("event %d = %+v", i, e)
		}
	}

	// Walk the log two at a time: every seq once, in order.
	var since uint64
	for since < head {
		var p page
		h.want(h.req("GET", fmt.Sprintf("/api/v1/events?since=%d&limit=2", since), tm.agentToken, nil), 200).json(t, &p)
		if len(p.Events) == 0 || len(p.Events) > 2 {
			t.Fatalf("since=%d: %d events", since, len(p.Events))
		}
		for _, e := range p.Events {
			if e.Seq != since+1 {
				t.Fatalf("since=%d: got seq %d", since, e.Seq)
			}
			since = e.Seq
		}
	}
	var p page
	r := h.want(h.req("GET", fmt.Sprintf("/api/v1/events?since=%d", head), tm.agentToken, nil), 200)
	r.json(t, &p)
	if len(p.Events) != 0 || p.Reset || !strings.Contains(string(r.body), `"events":[]`) {
		t.Errorf("at head: %s", r.body)
	}
	r = h.want(h.req("GET", fmt.Sprintf("/api/v1/events?since=%d", head+10), tm.agentToken, nil), 200)
	r.json(t, &p)
	if !p.Reset || p.Head != head || strings.Contains(string(r.body), `"events"`) {
		t.Errorf("ahead of head: %s, want {reset:true, head:%d}", r.body, head)
	}
	for _, q := range []string{"since=-1", "since=abc", "since=1.5", "limit=x", "limit=0"} {
		checkErr(t, h.req("GET", "/api/v1/events?"+q, tm.agentToken, nil), 400, "invalid")
	}
}
