package httpapi

import (
	"context"
	"strings"
	"testing"
)

type agentJSON struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Role   string `json:"role"`
	Active bool   `json:"active"`
	Keys   []struct {
		ID        string  `json:"id"`
		Prefix    string  `json:"prefix"`
		RevokedAt *string `json:"revoked_at"`
	} `json:"keys"`
}

func (h *harness) agents(token string) map[string]agentJSON {
	h.t.Helper()
	var got struct {
		Agents []agentJSON `json:"agents"`
	}
	h.want(h.req("GET", "/api/v1/agents", token, nil), 200).json(h.t, &got)
	m := map[string]agentJSON{}
	for _, a := range got.Agents {
		m[a.ID] = a
	}
	return m
}

func TestAgentsList(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")

	asAdmin := h.agents(tm.adminToken)
	if len(asAdmin) != 2 {
		t.Fatalf("admin sees %d agents, want 2", len(asAdmin))
	}
	ada := asAdmin[tm.agentID]
	if ada.Email != "ada@acme.example" || len(ada.Keys) != 1 || ada.Keys[0].ID != tm.agentKeyID {
		t.Errorf("admin's view of the agent = %+v, want email and its one key", ada)
	}
	if !strings.HasPrefix(tm.agentKey, ada.Keys[0].Prefix) || len(ada.Keys[0].Prefix) != 12 {
		t.Errorf("key prefix %q is not the first 12 characters of the key", ada.Keys[0].Prefix)
	}

	r := h.want(h.req("GET", "/api/v1/agents", tm.agentToken, nil), 200)
	for _, secret := range []string{"email", "keys", "hash", "agent_id", tm.agentKey, tm.adminKey} {
		if strings.Contains(string(r.body), secret) {
			t.Errorf("an agent's list shows %q: %s", secret, r.body)
		}
	}
	r = h.want(h.req("GET", "/api/v1/agents", tm.adminToken, nil), 200)
	for _, secret := range []string{`"hash"`, `"agent_id"`, tm.agentKey, tm.adminKey} {
		if strings.Contains(string(r.body), secret) {
			t.Errorf("the admin's list shows %q: %s", secret, r.body)
		}
	}
}

func TestAgentCreate(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")

	var got struct {
		Agent     agentJSON `json:"agent"`
		Key       struct{ ID, Prefix string }
		AccessKey string `json:"access_key"`
	}
	r := h.want(h.req("POST", "/api/v1/agents", tm.adminToken, map[string]any{"name": "Bo", "email": "bo@acme.example", "role": "admin", "shoe_size": 44}), 201)
	r.json(t, &got)
	if got.Agent.Name != "Bo" || got.Agent.Role != "admin" || !got.Agent.Active || got.AccessKey == "" || got.Key.ID == "" {
		t.Errorf("created = %s", r.body)
	}
	if strings.Contains(string(r.body), `"hash"`) {
		t.Errorf("the answer shows the key's hash: %s", r.body)
	}
	h.signIn(got.AccessKey)

	before := h.head(tm.adminToken)
	count := len(h.agents(tm.adminToken))
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"malformed", raw(`{"name":"x",}`), ""},
		{"not an object", raw(`"x"`), ""},
		{"name missing", map[string]any{"email": "x@y.example"}, "name"},
		{"name not a string", map[string]any{"name": 7}, "name"},
		{"email invalid", map[string]any{"name": "C", "email": "not an email"}, "email"},
		{"email not a string", map[string]any{"name": "C", "email": true}, "email"},
		{"role unknown", map[string]any{"name": "C", "role": "owner"}, "role"},
		{"role not a string", map[string]any{"name": "C", "role": 1}, "role"},
		{"name too long", map[string]any{"name": strings.Repeat("n", 201)}, "name"},
	} {
		r := h.req("POST", "/api/v1/agents", tm.adminToken, tc.body)
		checkErr(t, r, 400, "invalid")
		if tc.field != "" && r.status == 400 && !strings.Contains(errMessage(t, r), tc.field) {
			t.Errorf("%s: message %q does not name %s", tc.name, errMessage(t, r), tc.field)
		}
	}
	h.unchanged(tm.adminToken, before)
	if n := len(h.agents(tm.adminToken)); n != count {
		t.Errorf("failed creations changed the team from %d to %d agents", count, n)
	}
}

func TestAgentKeys(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")

	var issued struct {
		Key struct {
			ID     string `json:"id"`
			Prefix string `json:"prefix"`
		} `json:"key"`
		AccessKey string `json:"access_key"`
	}
	h.want(h.req("POST", "/api/v1/agents/"+tm.agentID+"/keys", tm.adminToken, nil), 201).json(t, &issued)
	if issued.AccessKey == "" || !strings.HasPrefix(issued.AccessKey, issued.Key.Prefix) {
		t.Fatalf("issued = %+v", issued)
	}
	second := h.signIn(issued.AccessKey)

	var list struct {
		Keys []struct {
			ID        string  `json:"id"`
			RevokedAt *string `json:"revoked_at"`
		} `json:"keys"`
	}
	r := h.want(h.req("GET", "/api/v1/agents/"+tm.agentID+"/keys", tm.adminToken, nil), 200)
	r.json(t, &list)
	if len(list.Keys) != 2 || list.Keys[0].ID != tm.agentKeyID || list.Keys[1].ID != issued.Key.ID {
		t.Errorf("keys = %s, want the first key then the new one", r.body)
	}
	if strings.Contains(string(r.body), issued.AccessKey) || strings.Contains(string(r.body), `"hash"`) {
		t.Errorf("the key list shows secrets: %s", r.body)
	}

	// Revoking the first key ends its session at once; the other key's
	// session goes on.
	h.want(h.req("DELETE", "/api/v1/agents/"+tm.agentID+"/keys/"+tm.agentKeyID, tm.adminToken, nil), 204)
	h.wantErr(h.req("GET", "/api/v1/conversations", tm.agentToken, nil), 401, "unauthorized")
	h.wantErr(h.req("POST", "/api/v1/session", "", map[string]any{"access_key": tm.agentKey}), 401, "unauthorized")
	h.want(h.req("GET", "/api/v1/conversations", second, nil), 200)
	h.want(h.req("GET", "/api/v1/agents/"+tm.agentID+"/keys", tm.adminToken, nil), 200).json(t, &list)
	if list.Keys[0].RevokedAt == nil || list.Keys[1].RevokedAt != nil {
		t.Errorf("after revoking the first key: %+v", list.Keys)
	}
	// Revoking twice is harmless.
	h.want(h.req("DELETE", "/api/v1/agents/"+tm.agentID+"/keys/"+tm.agentKeyID, tm.adminToken, nil), 204)

	before := h.head(tm.adminToken)
	for _, tc := range []struct {
		method, path string
	}{
		{"GET", "/api/v1/agents/nope/keys"},
		{"POST", "/api/v1/agents/nope/keys"},
		{"DELETE", "/api/v1/agents/nope/keys/" + issued.Key.ID},
		{"DELETE", "/api/v1/agents/" + tm.agentID + "/keys/nope"},
		// A real key, but of another agent.
		{"DELETE", "/api/v1/agents/" + tm.adminID + "/keys/" + issued.Key.ID},
	} {
		checkErr(t, h.req(tc.method, tc.path, tm.adminToken, nil), 404, "not_found")
	}
	h.unchanged(tm.adminToken, before)
	h.want(h.req("GET", "/api/v1/conversations", second, nil), 200)
}

func TestAgentDelete(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	conv, _ := h.receive(tm, "+15550001", "hello?")
	h.want(h.req("PATCH", "/api/v1/conversations/"+conv, tm.adminToken, map[string]any{"assignee_id": tm.agentID}), 200)

	h.want(h.req("DELETE", "/api/v1/agents/"+tm.agentID, tm.adminToken, nil), 204)

	h.wantErr(h.req("GET", "/api/v1/agents", tm.agentToken, nil), 401, "unauthorized")
	h.wantErr(h.req("POST", "/api/v1/session", "", map[string]any{"access_key": tm.agentKey}), 401, "unauthorized")
	a := h.agents(tm.adminToken)[tm.agentID]
	if a.Active {
		t.Error("the agent is still active")
	}
	for _, k := range a.Keys {
		if k.RevokedAt == nil {
			t.Errorf("key %s not revoked", k.ID)
		}
	}
	var got struct {
		Conversation struct {
			AssigneeID *string `json:"assignee_id"`
		} `json:"conversation"`
	}
	h.want(h.req("GET", "/api/v1/conversations/"+conv, tm.adminToken, nil), 200).json(t, &got)
	if got.Conversation.AssigneeID != nil {
		t.Errorf("conversation still assigned to %s", *got.Conversation.AssigneeID)
	}
	// A deactivated agent gets no new keys.
	checkErr(t, h.req("POST", "/api/v1/agents/"+tm.agentID+"/keys", tm.adminToken, nil), 409, "conflict")

	before := h.head(tm.adminToken)
	checkErr(t, h.req("DELETE", "/api/v1/agents/nope", tm.adminToken, nil), 404, "not_found")
	// The last active admin stays.
	checkErr(t, h.req("DELETE", "/api/v1/agents/"+tm.adminID, tm.adminToken, nil), 409, "conflict")
	h.unchanged(tm.adminToken, before)
}

func TestTenantCreate(t *testing.T) {
	t.Run("off without operator token", func(t *testing.T) {
		h := newHarness(t)
		checkErr(t, h.req("POST", "/api/v1/tenants", "anything", map[string]any{"name": "X"}), 404, "not_found")
		checkErr(t, h.req("POST", "/api/v1/tenants", "", map[string]any{"name": "X"}), 404, "not_found")
	})
	t.Run("on", func(t *testing.T) {
		const op = "operator-secret-0123456789"
		h := newHarness(t, withConfig(func(c *Config) { c.OperatorToken = op }))
		var got struct {
			Tenant struct {
				ID, Name  string
				CreatedAt string `json:"created_at"`
			} `json:"tenant"`
			Admin     agentJSON `json:"admin"`
			AccessKey string    `json:"access_key"`
		}
		r := h.req("POST", "/api/v1/tenants", op, map[string]any{"name": "Globex"})
		if r.status != 201 {
			t.Fatalf("got %s, want 201", r)
		}
		r.json(t, &got)
		if got.Tenant.ID == "" || got.Tenant.Name != "Globex" || got.Tenant.CreatedAt == "" || got.Admin.Role != "admin" || got.AccessKey == "" {
			t.Errorf("created = %s", r.body)
		}
		tok := h.signIn(got.AccessKey)
		if n := len(h.agents(tok)); n != 1 {
			t.Errorf("new tenant has %d agents, want 1", n)
		}

		checkErr(t, h.req("POST", "/api/v1/tenants", "", map[string]any{"name": "X"}), 401, "unauthorized")
		checkErr(t, h.req("POST", "/api/v1/tenants", op+"x", map[string]any{"name": "X"}), 401, "unauthorized")
		checkErr(t, h.req("POST", "/api/v1/tenants", "o", map[string]any{"name": "X"}), 401, "unauthorized")
		// A session token is not the operator token.
		checkErr(t, h.req("POST", "/api/v1/tenants", tok, map[string]any{"name": "X"}), 401, "unauthorized")
		checkErr(t, h.req("POST", "/api/v1/tenants", op, raw(`{"name":`)), 400, "invalid")
		checkErr(t, h.req("POST", "/api/v1/tenants", op, map[string]any{"name": 5}), 400, "invalid")
		checkErr(t, h.req("POST", "/api/v1/tenants", op, map[string]any{"name": "  "}), 400, "invalid")
	})
}

// TestNoSecretsInLogs: tokens, access keys and ids-in-paths stay out of the
// access log, which shows the route template instead.
func TestNoSecretsInLogs(t *testing.T) {
	const op = "operator-secret-0123456789"
	h := newHarness(t, withConfig(func(c *Config) { c.OperatorToken = op }))
	tm := h.newTeam("Acme")
	h.req("POST", "/api/v1/tenants", op, map[string]any{"name": "Globex"})
	h.req("GET", "/api/v1/agents/"+tm.agentID+"/keys", tm.adminToken, nil)
	h.req("GET", "/api/v1/conversations?q=secret-search", tm.agentToken, nil)
	_, _, _, _, err := h.svc.CreateTenant(context.Background(), "Initech")
	if err != nil {
		t.Fatal(err)
	}
	logs := h.logs.String()
	for _, secret := range []string{op, tm.adminKey, tm.agentKey, tm.adminToken, tm.agentToken, tm.agentID, "secret-search"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	if !strings.Contains(logs, `"route":"/api/v1/agents/:id/keys"`) {
		t.Errorf("the log lacks the route template:\n%s", logs)
	}
}
