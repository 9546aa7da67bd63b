package httpapi

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/privacy"
)

// runErasures carries out the queued erasures as the server's job does.
func (h *harness) runErasures() {
	h.t.Helper()
	cfg := privacy.EraserConfig{Service: h.svc, Compactor: h.svc.Store().(privacy.Compactor)}
	if h.srv.media != nil {
		cfg.Media = h.srv.media
	}
	e, err := privacy.NewEraser(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := e.RunPending(context.Background()); err != nil {
		h.t.Fatalf("run erasures: %v", err)
	}
}

func TestAuditLogRecordsAdminActions(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme") // creates an agent (with a key) and a channel
	h.want(h.req("DELETE", "/api/v1/agents/"+tm.agentID+"/keys/"+tm.agentKeyID, tm.adminToken, nil), 204)
	h.want(h.req("DELETE", "/api/v1/channels/"+tm.channelID, tm.adminToken, nil), 204)
	h.want(h.req("DELETE", "/api/v1/agents/"+tm.agentID, tm.adminToken, nil), 204)

	h.wantErr(h.req("GET", "/api/v1/audit", tm.agentToken, nil), 401, "unauthorized") // its key is revoked
	other := h.newTeam("Other")
	h.wantErr(h.req("GET", "/api/v1/audit", other.agentToken, nil), 403, "forbidden")

	type entry struct {
		ID     string `json:"id"`
		At     string `json:"at"`
		Action string `json:"action"`
		Actor  struct {
			Type, ID, Name string
		} `json:"actor"`
		Target struct {
			Type, ID string
		} `json:"target"`
		IP string `json:"ip"`
	}
	var all []entry
	cursor := ""
	for range 10 {
		var page struct {
			Entries    []entry `json:"entries"`
			NextCursor *string `json:"next_cursor"`
		}
		h.want(h.req("GET", "/api/v1/audit?limit=2&cursor="+url.QueryEscape(cursor), tm.adminToken, nil), 200).json(t, &page)
		all = append(all, page.Entries...)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	want := []struct{ action, target string }{
		{inbox.AuditAgentDeactivated, tm.agentID},
		{inbox.AuditChannelDeleted, tm.channelID},
		{inbox.AuditKeyRevoked, tm.agentKeyID},
		{inbox.AuditChannelCreated, tm.channelID},
		{inbox.AuditKeyIssued, tm.agentKeyID},
		{inbox.AuditAgentCreated, tm.agentID},
	}
	if len(all) != len(want) {
		t.Fatalf("audit log has %d entries, want %d: %+v", len(all), len(want), all)
	}
	for i, w := range want {
		e := all[i]
		if e.Action != w.action || e.Target.ID != w.target {
			t.Errorf("entry %d = %s %s, want %s %s", i, e.Action, e.Target.ID, w.action, w.target)
		}
		if e.Actor.Type != "agent" || e.Actor.ID != tm.adminID || e.Actor.Name == "" || e.IP != "127.0.0.1" || e.ID == "" || e.At == "" {
			t.Errorf("entry %d: who/where/when missing: %+v", i, e)
		}
	}
	// The other tenant's log holds only its own setup.
	var theirs struct {
		Entries []entry `json:"entries"`
	}
	h.want(h.req("GET", "/api/v1/audit", other.adminToken, nil), 200).json(t, &theirs)
	for _, e := range theirs.Entries {
		if e.Target.ID == tm.agentID || e.Target.ID == tm.channelID {
			t.Errorf("tenant sees another tenant's entry %+v", e)
		}
	}
	h.wantErr(h.req("GET", "/api/v1/audit?cursor=nonsense", tm.adminToken, nil), 400, "invalid")
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		if r := h.req(m, "/api/v1/audit", tm.adminToken, nil); r.status < 400 {
			t.Errorf("%s /api/v1/audit answered %d: entries must not change through the API", m, r.status)
		}
	}
}

func TestContactEraseEndToEnd(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	convID, _ := h.receive(tm, "+15550100", "my card is ERASE-HTTP-4e1b")
	var conv struct {
		Conversation struct {
			Contact struct {
				ID string `json:"id"`
			} `json:"contact"`
		} `json:"conversation"`
	}
	h.want(h.req("GET", "/api/v1/conversations/"+convID, tm.adminToken, nil), 200).json(t, &conv)
	contactID := conv.Conversation.Contact.ID
	if contactID == "" {
		t.Fatal("conversation names no contact")
	}
	before := h.head(tm.agentToken)

	h.wantErr(h.req("DELETE", "/api/v1/contacts/"+contactID, tm.agentToken, nil), 403, "forbidden")
	other := h.newTeam("Other")
	h.wantErr(h.req("DELETE", "/api/v1/contacts/"+contactID, other.adminToken, nil), 404, "not_found")
	h.wantErr(h.req("DELETE", "/api/v1/contacts/"+uuid.NewString(), tm.adminToken, nil), 404, "not_found")

	var accepted struct {
		Code   string `json:"confirmation_code"`
		Status string `json:"status"`
		URL    string `json:"url"`
	}
	h.want(h.req("DELETE", "/api/v1/contacts/"+contactID, tm.adminToken, nil), 202).json(t, &accepted)
	if accepted.Code == "" || accepted.Status != "received" || accepted.URL != h.url+"/privacy/deletion/"+accepted.Code {
		t.Fatalf("202 body %+v", accepted)
	}
	var st map[string]any
	h.want(h.req("GET", "/privacy/deletion/"+accepted.Code, "", nil, "Accept", "application/json"), 200).json(t, &st)
	if st["status"] != "received" || st["completed_at"] != nil {
		t.Errorf("status before the job ran: %v", st)
	}

	h.runErasures()

	h.want(h.req("GET", "/privacy/deletion/"+accepted.Code, "", nil, "Accept", "application/json"), 200).json(t, &st)
	if st["status"] != "completed" || st["completed_at"] == nil {
		t.Errorf("status after the job ran: %v", st)
	}
	page := h.want(h.req("GET", "/privacy/deletion/"+accepted.Code, "", nil), 200)
	if !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") || !strings.Contains(string(page.body), "completed") ||
		strings.Contains(string(page.body), "+15550100") {
		t.Errorf("status page: %s", page.body)
	}
	h.wantErr(h.req("GET", "/privacy/deletion/unknown-code", "", nil, "Accept", "application/json"), 404, "not_found")

	h.wantErr(h.req("GET", "/api/v1/conversations/"+convID, tm.adminToken, nil), 404, "not_found")
	h.wantErr(h.req("GET", "/api/v1/conversations/"+convID+"/messages", tm.adminToken, nil), 404, "not_found")

	// An app syncing from before the erasure learns of it and gets no
	// content back.
	var evs struct {
		Events []inbox.Event `json:"events"`
	}
	h.want(h.req("GET", "/api/v1/events?since=0&limit=500", tm.agentToken, nil), 200).json(t, &evs)
	sawErased := false
	for _, e := range evs.Events {
		if strings.Contains(string(e.Data), "ERASE-HTTP") {
			t.Errorf("event %d (%s) still has the erased text", e.Seq, e.Type)
		}
		if e.Type == inbox.EventContactErased && e.Seq > before {
			var d inbox.ContactErased
			if err := json.Unmarshal(e.Data, &d); err != nil || d.ContactID != contactID || len(d.ConversationIDs) != 1 || d.ConversationIDs[0] != convID {
				t.Errorf("contact.erased data: %s", e.Data)
			}
			sawErased = true
		}
	}
	if !sawErased {
		t.Error("no contact.erased event after the erasure")
	}
	// Erasing again names the same request.
	var again struct {
		Code string `json:"confirmation_code"`
	}
	h.want(h.req("DELETE", "/api/v1/contacts/"+contactID, tm.adminToken, nil), 202).json(t, &again)
	if again.Code != accepted.Code {
		t.Errorf("second erase answered code %q, want %q", again.Code, accepted.Code)
	}
}

func signedRequest(secret string, payload any) string {
	body, _ := json.Marshal(payload)
	enc := base64.RawURLEncoding.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(enc))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) + "." + enc
}

func TestMetaDataDeletionCallback(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	waID := h.providerChannel(tm, "whatsapp", map[string]any{"phone_number_id": "1", "access_token": "t", "app_secret": "app-secret-1", "verify_token": "v"})
	got, err := h.svc.Receive(context.Background(), waID, []inbox.Inbound{{ExternalID: "wamid.1", ContactHandle: "15551234", ContactName: "Meta User", Text: "hi META-MARKER"}})
	if err != nil {
		t.Fatal(err)
	}
	convID := got[0].Message.ConversationID
	form := func(sr string) raw { return raw("signed_request=" + url.QueryEscape(sr)) }
	post := func(id, sr string) *response {
		return h.req("POST", "/webhooks/meta/"+id+"/data-deletion", "", form(sr), "Content-Type", "application/x-www-form-urlencoded")
	}
	now := time.Now().Unix()
	before := h.head(tm.adminToken)

	h.wantErr(post(waID, signedRequest("wrong-secret", map[string]any{"algorithm": "HMAC-SHA256", "issued_at": now, "user_id": "15551234"})), 401, "unauthorized")
	h.wantErr(post(waID, signedRequest("app-secret-1", map[string]any{"algorithm": "HMAC-SHA256", "issued_at": now - 7*86400, "user_id": "15551234"})), 401, "unauthorized")
	h.wantErr(post(uuid.NewString(), signedRequest("app-secret-1", map[string]any{"algorithm": "HMAC-SHA256", "issued_at": now, "user_id": "15551234"})), 404, "not_found")
	h.wantErr(h.req("POST", "/webhooks/meta/"+waID+"/data-deletion", "", raw(""), "Content-Type", "application/x-www-form-urlencoded"), 400, "invalid")
	h.unchanged(tm.adminToken, before)

	var ans struct {
		URL  string `json:"url"`
		Code string `json:"confirmation_code"`
	}
	h.want(post(waID, signedRequest("app-secret-1", map[string]any{"algorithm": "HMAC-SHA256", "issued_at": now, "user_id": "15551234"})), 200).json(t, &ans)
	if ans.Code == "" || ans.URL != h.url+"/privacy/deletion/"+ans.Code {
		t.Fatalf("answer %+v", ans)
	}
	h.runErasures()
	var st map[string]any
	h.want(h.req("GET", "/privacy/deletion/"+ans.Code, "", nil, "Accept", "application/json"), 200).json(t, &st)
	if st["status"] != "completed" {
		t.Errorf("status %v", st)
	}
	h.wantErr(h.req("GET", "/api/v1/conversations/"+convID, tm.adminToken, nil), 404, "not_found")

	// Nobody matching: a request is still made, and its page says nothing
	// was held.
	h.want(post(waID, signedRequest("app-secret-1", map[string]any{"algorithm": "HMAC-SHA256", "issued_at": now, "user_id": "nobody"})), 200).json(t, &ans)
	h.runErasures()
	page := h.want(h.req("GET", "/privacy/deletion/"+ans.Code, "", nil), 200)
	if !strings.Contains(string(page.body), "No data about you was held") {
		t.Errorf("page for an unknown user: %s", page.body)
	}
}

func TestContactExport(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	convID, inID := h.receive(tm, "+15550200", "where is my order EXPORT-1")
	pdf := append([]byte("%PDF-1.4\n"), pdfBytes(2000)...)
	m := h.uploadOK(tm.agentToken, "invoice.pdf", pdf)
	var sent struct {
		Message struct {
			ID string `json:"id"`
		} `json:"message"`
	}
	h.want(h.req("POST", "/api/v1/conversations/"+convID+"/messages", tm.agentToken,
		map[string]any{"client_id": newClientID(), "media_id": m.ID}), 201).json(t, &sent)
	var conv struct {
		Conversation struct {
			Contact struct {
				ID string `json:"id"`
			} `json:"contact"`
		} `json:"conversation"`
	}
	h.want(h.req("GET", "/api/v1/conversations/"+convID, tm.adminToken, nil), 200).json(t, &conv)
	contactID := conv.Conversation.Contact.ID

	h.wantErr(h.req("GET", "/api/v1/contacts/"+contactID+"/export", tm.agentToken, nil), 403, "forbidden")
	h.wantErr(h.req("GET", "/api/v1/contacts/"+contactID+"/export?format=pdf", tm.adminToken, nil), 400, "invalid")
	other := h.newTeam("Other")
	h.wantErr(h.req("GET", "/api/v1/contacts/"+contactID+"/export", other.adminToken, nil), 404, "not_found")

	type export struct {
		ExportedAt string `json:"exported_at"`
		Contact    struct {
			ID, Handle, Name string
		} `json:"contact"`
		Conversations []struct {
			ID       string `json:"id"`
			Status   string `json:"status"`
			Messages []struct {
				ID        string     `json:"id"`
				Text      string     `json:"text"`
				Status    string     `json:"status"`
				CreatedAt string     `json:"created_at"`
				Media     *mediaJSON `json:"media"`
			} `json:"messages"`
		} `json:"conversations"`
	}
	var got export
	r := h.want(h.req("GET", "/api/v1/contacts/"+contactID+"/export", tm.adminToken, nil), 200)
	r.json(t, &got)
	if got.Contact.ID != contactID || got.Contact.Handle != "+15550200" || len(got.Conversations) != 1 || got.ExportedAt == "" {
		t.Fatalf("export: %s", r.body)
	}
	msgs := got.Conversations[0].Messages
	if got.Conversations[0].ID != convID || len(msgs) != 2 || msgs[0].ID != inID || msgs[0].Text != "where is my order EXPORT-1" ||
		msgs[0].Status != "received" || msgs[0].CreatedAt == "" || msgs[1].ID != sent.Message.ID || msgs[1].Media == nil || msgs[1].Media.URL == "" {
		t.Fatalf("export messages: %s", r.body)
	}
	// The link works on its own.
	if link := h.req("GET", strings.TrimPrefix(msgs[1].Media.URL, h.url), "", nil); link.status != 200 || !bytes.Equal(link.body, pdf) {
		t.Errorf("media link in export answered %d", link.status)
	}

	z := h.want(h.req("GET", "/api/v1/contacts/"+contactID+"/export?format=zip", tm.adminToken, nil), 200)
	if z.header.Get("Content-Type") != "application/zip" {
		t.Errorf("zip content type %q", z.header.Get("Content-Type"))
	}
	zr, err := zip.NewReader(bytes.NewReader(z.body), int64(len(z.body)))
	if err != nil {
		t.Fatalf("zip: %v", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = b
	}
	var inZip export
	if err := json.Unmarshal(files["export.json"], &inZip); err != nil || inZip.Contact.ID != contactID {
		t.Errorf("export.json in zip: %v %s", err, files["export.json"])
	}
	if b := files["media/"+m.ID+"-invoice.pdf"]; !bytes.Equal(b, pdf) {
		t.Errorf("zip lacks the media file; has %d files", len(files))
	}

	var audit struct {
		Entries []struct {
			Action string              `json:"action"`
			Target struct{ ID string } `json:"target"`
		} `json:"entries"`
	}
	h.want(h.req("GET", "/api/v1/audit?limit=2", tm.adminToken, nil), 200).json(t, &audit)
	if len(audit.Entries) != 2 || audit.Entries[0].Action != inbox.AuditContactExported || audit.Entries[0].Target.ID != contactID {
		t.Errorf("audit after exports: %+v", audit.Entries)
	}

	h.want(h.req("DELETE", "/api/v1/contacts/"+contactID, tm.adminToken, nil), 202)
	h.runErasures()
	h.wantErr(h.req("GET", "/api/v1/contacts/"+contactID+"/export", tm.adminToken, nil), 404, "not_found")
	h.wantErr(h.req("GET", "/api/v1/media/"+m.ID, tm.adminToken, nil), 404, "not_found")
}

func TestRetentionSettingsAPI(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	var rs map[string]any
	h.want(h.req("GET", "/api/v1/settings/retention", tm.adminToken, nil), 200).json(t, &rs)
	if rs["messages_days"] != float64(0) {
		t.Errorf("default: %v", rs)
	}
	h.wantErr(h.req("GET", "/api/v1/settings/retention", tm.agentToken, nil), 403, "forbidden")
	h.wantErr(h.req("PUT", "/api/v1/settings/retention", tm.agentToken, map[string]any{"messages_days": 5}), 403, "forbidden")
	before := h.head(tm.adminToken)
	h.wantErr(h.req("PUT", "/api/v1/settings/retention", tm.adminToken, map[string]any{"messages_days": -1}), 400, "invalid")
	h.wantErr(h.req("PUT", "/api/v1/settings/retention", tm.adminToken, map[string]any{}), 400, "invalid")
	h.wantErr(h.req("PUT", "/api/v1/settings/retention", tm.adminToken, map[string]any{"messages_days": "30"}), 400, "invalid")
	h.unchanged(tm.adminToken, before)
	h.want(h.req("PUT", "/api/v1/settings/retention", tm.adminToken, map[string]any{"messages_days": 30}), 200).json(t, &rs)
	if rs["messages_days"] != float64(30) {
		t.Errorf("PUT answered %v", rs)
	}
	h.want(h.req("GET", "/api/v1/settings/retention", tm.adminToken, nil), 200).json(t, &rs)
	if rs["messages_days"] != float64(30) {
		t.Errorf("GET after PUT: %v", rs)
	}
	var audit struct {
		Entries []struct {
			Action string `json:"action"`
		} `json:"entries"`
	}
	h.want(h.req("GET", "/api/v1/audit?limit=1", tm.adminToken, nil), 200).json(t, &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].Action != inbox.AuditRetentionChanged {
		t.Errorf("audit: %+v", audit.Entries)
	}
}
