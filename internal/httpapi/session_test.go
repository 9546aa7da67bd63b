package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSessionCreate(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")

	var got struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		Agent     struct {
			ID   string `json:"id"`
			Role string `json:"role"`
		} `json:"agent"`
		Tenant struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"tenant"`
	}
	h.want(h.req("POST", "/api/v1/session", "", map[string]any{
		"access_key": tm.agentKey, "device": map[string]string{"name": "Pixel", "platform": "android"},
	}), 201).json(t, &got)
	if got.Token == "" || !got.ExpiresAt.After(time.Now()) {
		t.Errorf("token %q expiring %v: want a token expiring in the future", got.Token, got.ExpiresAt)
	}
	if got.Agent.ID != tm.agentID || got.Agent.Role != "agent" {
		t.Errorf("agent = %+v, want %s with role agent", got.Agent, tm.agentID)
	}
	if got.Tenant.ID != tm.tenantID || got.Tenant.Name != "Acme" {
		t.Errorf("tenant = %+v, want %s Acme", got.Tenant, tm.tenantID)
	}
	h.want(h.req("GET", "/api/v1/agents", got.Token, nil), 200)

	// A wrong key: the same 401 whether it looks real or not.
	unknown := h.req("POST", "/api/v1/session", "", map[string]any{"access_key": "obx_" + strings.Repeat("a", 32)})
	h.wantErr(unknown, 401, "unauthorized")
	garbage := h.req("POST", "/api/v1/session", "", map[string]any{"access_key": "hunter2"})
	h.wantErr(garbage, 401, "unauthorized")
	if string(unknown.body) != string(garbage.body) {
		t.Errorf("wrong keys answer differently: %s vs %s", unknown.body, garbage.body)
	}

	for _, tc := range []struct {
		name string
		body any
	}{
		{"no body", nil},
		{"empty body", raw("")},
		{"malformed", raw(`{"access_key":`)},
		{"not an object", raw(`["obx_x"]`)},
		{"trailing garbage", raw(`{"access_key":"x"} {}`)},
		{"missing key", map[string]any{"device": map[string]string{"name": "x"}}},
		{"key not a string", map[string]any{"access_key": 42}},
		{"device not an object", map[string]any{"access_key": tm.agentKey, "device": "phone"}},
		{"device name not a string", map[string]any{"access_key": tm.agentKey, "device": map[string]any{"name": 1}}},
	} {
		r := h.req("POST", "/api/v1/session", "", tc.body)
		if r.status != 400 {
			t.Errorf("%s: got %s, want 400", tc.name, r)
			continue
		}
		checkErr(t, r, 400, "invalid")
	}
	r := h.req("POST", "/api/v1/session", "", map[string]any{"access_key": 42})
	if msg := errMessage(t, r); !strings.Contains(msg, "access_key") {
		t.Errorf("type error message %q does not name the field", msg)
	}
	r = h.req("POST", "/api/v1/session", "", map[string]any{"access_key": tm.agentKey, "device": map[string]any{"name": 1}})
	if msg := errMessage(t, r); !strings.Contains(msg, "device.name") {
		t.Errorf("type error message %q does not name the field", msg)
	}
	// Unknown fields are ignored.
	h.want(h.req("POST", "/api/v1/session", "", map[string]any{"access_key": tm.agentKey, "remember_me": true}), 201)
}

func TestSessionDelete(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	other := h.signIn(tm.agentKey)

	h.want(h.req("DELETE", "/api/v1/session", tm.agentToken, nil), 204)
	h.wantErr(h.req("GET", "/api/v1/agents", tm.agentToken, nil), 401, "unauthorized")
	h.wantErr(h.req("DELETE", "/api/v1/session", tm.agentToken, nil), 401, "unauthorized")
	// Only this device was signed out.
	h.want(h.req("GET", "/api/v1/agents", other, nil), 200)
}

// TestAuthRequired walks every route that needs a session: no token, a
// token of the wrong shape, a well-formed unknown one, or another scheme
// all get the same 401, and nothing runs.
func TestAuthRequired(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	before := h.head(tm.adminToken)
	for _, r := range h.srv.routes() {
		if r.access == public {
			continue
		}
		path := strings.NewReplacer(":key_id", "k1", ":id", "x1").Replace(r.path)
		for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer obs_" + strings.Repeat("A", 43), "Basic " + tm.adminToken, tm.adminToken} {
			hdr := []string{}
			if auth != "" {
				hdr = []string{"Authorization", auth}
			}
			resp := h.req(r.method, path, "", raw(`{}`), hdr...)
			if resp.status != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: got %s, want 401", r.method, path, auth, resp)
				continue
			}
			checkErr(t, resp, 401, "unauthorized")
		}
	}
	h.unchanged(tm.adminToken, before)
}

// TestAdminRoutesForbidAgents: role before lookup, and before the body.
func TestAdminRoutesForbidAgents(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	before := h.head(tm.adminToken)
	n := 0
	for _, r := range h.srv.routes() {
		if r.access != admin {
			continue
		}
		n++
		for _, id := range []string{"no-such-id", tm.agentID, tm.adminID} {
			path := strings.NewReplacer(":key_id", tm.agentKeyID, ":id", id).Replace(r.path)
			for _, body := range []any{nil, raw(`{"malformed`), map[string]any{"name": "x", "type": "demo"}} {
				checkErr(t, h.req(r.method, path, tm.agentToken, body), 403, "forbidden")
			}
		}
	}
	if n < 8 {
		t.Errorf("%d admin routes in the table, want at least 8", n)
	}
	h.unchanged(tm.adminToken, before)
	// The agent's key was not revoked by any of that.
	h.want(h.req("GET", "/api/v1/agents", tm.agentToken, nil), 200)
}
