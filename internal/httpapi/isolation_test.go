package httpapi

import (
	"strings"
	"testing"
)

// TestTenantIsolation: tenant B's credentials, given tenant A's ids, get
// the same 404 as for ids that exist nowhere, and A's data is untouched.
func TestTenantIsolation(t *testing.T) {
	h := newHarness(t)
	a := h.newTeam("Acme")
	b := h.newTeam("Bolt")
	convA, msgA := h.receive(a, "+15550001", "A's secret order")
	h.want(h.req("PATCH", "/api/v1/conversations/"+convA, a.adminToken, map[string]any{"assignee_id": a.agentID}), 200)
	convB, _ := h.receive(b, "+15550001", "B's customer")
	headA := h.head(a.adminToken)

	send := map[string]any{"client_id": newClientID(), "text": "hi"}
	for _, tc := range []struct {
		name         string
		token        string
		method, path string
		unknownPath  string
		body         any
	}{
		{"get conversation", b.agentToken, "GET", "/api/v1/conversations/" + convA, "/api/v1/conversations/zzz", nil},
		{"patch conversation", b.agentToken, "PATCH", "/api/v1/conversations/" + convA, "/api/v1/conversations/zzz", map[string]any{"status": "resolved"}},
		{"read conversation", b.agentToken, "POST", "/api/v1/conversations/" + convA + "/read", "/api/v1/conversations/zzz/read", nil},
		{"list messages", b.agentToken, "GET", "/api/v1/conversations/" + convA + "/messages", "/api/v1/conversations/zzz/messages", nil},
		{"send message", b.agentToken, "POST", "/api/v1/conversations/" + convA + "/messages", "/api/v1/conversations/zzz/messages", send},
		{"messages before", b.agentToken, "GET", "/api/v1/conversations/" + convB + "/messages?before=" + msgA, "/api/v1/conversations/" + convB + "/messages?before=zzz", nil},
		{"retry message", b.agentToken, "POST", "/api/v1/messages/" + msgA + "/retry", "/api/v1/messages/zzz/retry", nil},
		{"list keys", b.adminToken, "GET", "/api/v1/agents/" + a.agentID + "/keys", "/api/v1/agents/zzz/keys", nil},
		{"issue key", b.adminToken, "POST", "/api/v1/agents/" + a.agentID + "/keys", "/api/v1/agents/zzz/keys", nil},
		{"revoke key", b.adminToken, "DELETE", "/api/v1/agents/" + a.agentID + "/keys/" + a.agentKeyID, "/api/v1/agents/zzz/keys/zzz", nil},
		{"revoke key via own agent", b.adminToken, "DELETE", "/api/v1/agents/" + b.agentID + "/keys/" + a.agentKeyID, "/api/v1/agents/" + b.agentID + "/keys/zzz", nil},
		{"deactivate agent", b.adminToken, "DELETE", "/api/v1/agents/" + a.agentID, "/api/v1/agents/zzz", nil},
		{"delete channel", b.adminToken, "DELETE", "/api/v1/channels/" + a.channelID, "/api/v1/channels/zzz", nil},
	} {
		got := h.req(tc.method, tc.path, tc.token, tc.body)
		if got.status != 404 {
			t.Errorf("%s: got %s, want 404", tc.name, got)
			continue
		}
		checkErr(t, got, 404, "not_found")
		if unknown := h.req(tc.method, tc.unknownPath, tc.token, tc.body); string(unknown.body) != string(got.body) {
			t.Errorf("%s: another tenant's id answers %s, an unknown id %s", tc.name, got.body, unknown.body)
		}
	}

	// B's lists, filtered by A's values, show none of A. TestRouteAccess
	// checks every list route without filters.
	for _, path := range []string{"/api/v1/conversations?assignee=" + a.agentID,
		"/api/v1/conversations?q=secret", "/api/v1/conversations?label=vip", "/api/v1/events?since=0&limit=200"} {
		body := string(h.want(h.req("GET", path, b.adminToken, nil), 200).body)
		for _, id := range []string{convA, msgA, a.agentID, a.adminID, a.channelID, a.tenantID, "secret order"} {
			if strings.Contains(body, id) {
				t.Errorf("GET %s as tenant B shows A's %q", path, id)
			}
		}
	}
	// A's agent id is not an agent of B's team.
	checkErr(t, h.req("PATCH", "/api/v1/conversations/"+convB, b.agentToken, map[string]any{"assignee_id": a.agentID}), 400, "invalid")

	h.unchanged(a.adminToken, headA)
	c := h.conversation(a.agentToken, convA)
	if c.Status != "open" || c.AssigneeID == nil || *c.AssigneeID != a.agentID || c.UnreadCount != 1 {
		t.Errorf("A's conversation changed: %+v", c)
	}
	if ch := h.channels(a.adminToken); len(ch) != 1 {
		t.Errorf("A's channels: %+v", ch)
	}
	if ag := h.agents(a.adminToken)[a.agentID]; !ag.Active || ag.Keys[0].RevokedAt != nil {
		t.Errorf("A's agent changed: %+v", ag)
	}
}
