package httpapi

import "testing"

func TestPushSettings(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	other := h.newTeam("Other")

	var got struct {
		Private *bool `json:"private"`
	}
	h.want(h.req("GET", "/api/v1/settings/push", tm.adminToken, nil), 200).json(t, &got)
	if got.Private == nil || *got.Private {
		t.Errorf("default = %v, want private false", got.Private)
	}
	h.wantErr(h.req("GET", "/api/v1/settings/push", tm.agentToken, nil), 403, "forbidden")
	h.wantErr(h.req("PUT", "/api/v1/settings/push", tm.agentToken, map[string]bool{"private": true}), 403, "forbidden")
	h.wantErr(h.req("GET", "/api/v1/settings/push", "", nil), 401, "unauthorized")

	h.want(h.req("PUT", "/api/v1/settings/push", tm.adminToken, map[string]bool{"private": true}), 200).json(t, &got)
	if got.Private == nil || !*got.Private {
		t.Errorf("PUT answered %v, want private true", got.Private)
	}
	got.Private = nil
	h.want(h.req("GET", "/api/v1/settings/push", tm.adminToken, nil), 200).json(t, &got)
	if got.Private == nil || !*got.Private {
		t.Errorf("after PUT, GET = %v, want private true", got.Private)
	}
	got.Private = nil
	h.want(h.req("GET", "/api/v1/settings/push", other.adminToken, nil), 200).json(t, &got)
	if got.Private == nil || *got.Private {
		t.Errorf("another tenant's setting = %v, want its own default", got.Private)
	}

	for _, bad := range []any{map[string]any{}, map[string]any{"private": "yes"}, map[string]any{"private": nil}, raw("{")} {
		h.wantErr(h.req("PUT", "/api/v1/settings/push", tm.adminToken, bad), 400, "invalid")
	}
	got.Private = nil
	h.want(h.req("GET", "/api/v1/settings/push", tm.adminToken, nil), 200).json(t, &got)
	if got.Private == nil || !*got.Private {
		t.Errorf("a refused PUT changed the setting to %v", got.Private)
	}
	h.want(h.req("PUT", "/api/v1/settings/push", tm.adminToken, map[string]bool{"private": false}), 200)
}
