package privacy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/media"
	"github.com/onebox/onebox/internal/privacy"
)

// world is a server's data directory with its store, service and media
// store, opened for real.
type world struct {
	t     *testing.T
	dir   string
	store *bolt.Store
	svc   *inbox.Service
	media *media.Store
	admin inbox.Principal
	chID  string
}

func open(t *testing.T, dir string) *world {
	t.Helper()
	store, err := bolt.Open(filepath.Join(dir, "onebox.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	svc, err := inbox.NewService(inbox.Config{Store: store, PublicURL: "https://onebox.example"})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := media.New(context.Background(), media.Config{Dir: filepath.Join(dir, "media"), Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetMediaURLs(ms.SignURLs)
	return &world{t: t, dir: dir, store: store, svc: svc, media: ms}
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := open(t, t.TempDir())
	t.Cleanup(func() { w.store.Close() })
	ctx := context.Background()
	_, _, _, key, err := w.svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	w.admin, _, err = w.svc.SignIn(ctx, key, inbox.Device{Name: "test", Platform: "go"})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := w.svc.CreateChannel(ctx, w.admin, inbox.ChannelDemo, "Demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.chID = ch.ID
	return w
}

// receive brings in a text and a PDF from handle, both carrying marker.
func (w *world) receive(handle, marker string) (contactID string, pdf []byte) {
	w.t.Helper()
	ctx := context.Background()
	pdf = []byte("%PDF-1.4\n% " + marker + "-file-bytes\n%%EOF\n")
	m, err := w.media.Save(ctx, w.admin.Tenant.ID, bytes.NewReader(pdf), "statement.pdf", "application/pdf")
	if err != nil {
		w.t.Fatalf("save media: %v", err)
	}
	got, err := w.svc.Receive(ctx, w.chID, []inbox.Inbound{
		{ExternalID: uuid.NewString(), ContactHandle: handle, ContactName: "Customer " + marker, Text: "hello " + marker},
		{ExternalID: uuid.NewString(), ContactHandle: handle, Kind: inbox.KindFile, Media: m},
	})
	if err != nil {
		w.t.Fatalf("receive: %v", err)
	}
	conv, err := w.svc.GetConversation(ctx, w.admin, got[0].Message.ConversationID)
	if err != nil {
		w.t.Fatal(err)
	}
	return conv.Contact.ID, pdf
}

// filesHolding lists the files under dir whose bytes contain needle.
func filesHolding(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func newEraser(t *testing.T, w *world) *privacy.Eraser {
	t.Helper()
	e, err := privacy.NewEraser(privacy.EraserConfig{Service: w.svc, Media: w.media, Compactor: w.store})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestErasureLeavesNothingInTheDataDir(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	gone, gonePDF := w.receive("+15550001", "ERASE-ME-7f3a9c")
	_, keptPDF := w.receive("+15550002", "KEEP-ME-2b8d41")
	for _, m := range []string{"ERASE-ME-7f3a9c", "KEEP-ME-2b8d41"} {
		if len(filesHolding(t, w.dir, []byte(m))) == 0 {
			t.Fatalf("marker %s is nowhere before erasure: the search cannot see the store", m)
		}
	}

	job, err := w.svc.EraseContact(ctx, w.admin, gone)
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	if job.Status != inbox.ErasureReceived {
		t.Fatalf("new job status %q", job.Status)
	}
	if err := newEraser(t, w).RunPending(ctx); err != nil {
		t.Fatalf("run erasure: %v", err)
	}
	done, err := w.svc.Erasure(ctx, job.Code)
	if err != nil || done.Status != inbox.ErasureCompleted || done.CompletedAt == nil {
		t.Fatalf("job after run: %+v, %v", done, err)
	}

	for _, needle := range [][]byte{[]byte("ERASE-ME-7f3a9c"), gonePDF} {
		if hits := filesHolding(t, w.dir, needle); len(hits) > 0 {
			t.Errorf("erased bytes %q still in %v", needle[:12], hits)
		}
	}
	for _, needle := range [][]byte{[]byte("KEEP-ME-2b8d41"), keptPDF} {
		if len(filesHolding(t, w.dir, needle)) == 0 {
			t.Errorf("erasure also removed another contact's data (%q)", needle[:12])
		}
	}

	// The log tells syncing apps, and keeps no content.
	events, _, err := w.store.Events(ctx, w.admin.Tenant.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	erased, tombstones := 0, 0
	for _, e := range events {
		switch e.Type {
		case inbox.EventContactErased:
			var d inbox.ContactErased
			if err := json.Unmarshal(e.Data, &d); err != nil || d.ContactID != gone || len(d.ConversationIDs) != 1 {
				t.Errorf("contact.erased data %s", e.Data)
			}
			erased++
		case inbox.EventTombstone:
			tombstones++
		}
		if strings.Contains(string(e.Data), "ERASE-ME") {
			t.Errorf("event %d (%s) still carries erased text", e.Seq, e.Type)
		}
	}
	if erased != 1 || tombstones == 0 {
		t.Errorf("log has %d contact.erased and %d tombstones; want 1 and some", erased, tombstones)
	}

	// Asking again is harmless and names the same request.
	again, err := w.svc.EraseContact(ctx, w.admin, gone)
	if err != nil || again.Code != job.Code {
		t.Errorf("second erase: %+v, %v", again, err)
	}
	// The audit log has the request and its completion.
	entries, _, err := w.svc.AuditLog(ctx, w.admin, 50, "")
	if err != nil {
		t.Fatal(err)
	}
	if entries[0].Action != inbox.AuditErasureCompleted || entries[1].Action != inbox.AuditErasureRequested {
		t.Errorf("audit log starts %s, %s", entries[0].Action, entries[1].Action)
	}
}

func TestErasureResumesAfterRestart(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	gone, gonePDF := w.receive("+15550003", "HALFWAY-5c1e77")
	job, err := w.svc.EraseContact(ctx, w.admin, gone)
	if err != nil {
		t.Fatal(err)
	}
	// Part of the work, then the process stops.
	if _, err := w.svc.EraseStep(ctx, job.Code); err != nil {
		t.Fatal(err)
	}
	if err := w.store.Close(); err != nil {
		t.Fatal(err)
	}

	w2 := open(t, w.dir)
	defer w2.store.Close()
	pending, err := w2.svc.PendingErasures(ctx)
	if err != nil || len(pending) != 1 || pending[0] != job.Code {
		t.Fatalf("pending after restart: %v, %v", pending, err)
	}
	if err := newEraser(t, w2).RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := w2.svc.Erasure(ctx, job.Code)
	if err != nil || got.Status != inbox.ErasureCompleted {
		t.Fatalf("after resume: %+v, %v", got, err)
	}
	for _, needle := range [][]byte{[]byte("HALFWAY-5c1e77"), gonePDF} {
		if hits := filesHolding(t, w.dir, needle); len(hits) > 0 {
			t.Errorf("erased bytes still in %v", hits)
		}
	}
	if pending, _ := w2.svc.PendingErasures(ctx); len(pending) != 0 {
		t.Errorf("still pending: %v", pending)
	}
}

// countingCompactor counts the rewrites of the store file.
type countingCompactor struct {
	*bolt.Store
	n int
}

func (c *countingCompactor) Compact(ctx context.Context) error {
	c.n++
	return c.Store.Compact(ctx)
}

func TestPendingErasuresShareOneRewrite(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var codes []string
	for i, m := range []string{"FIRST-0c1d", "SECOND-8e2f", "THIRD-4a6b"} {
		id, _ := w.receive("+1555000"+string(rune('5'+i)), m)
		job, err := w.svc.EraseContact(ctx, w.admin, id)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, job.Code)
	}
	cc := &countingCompactor{Store: w.store}
	e, err := privacy.NewEraser(privacy.EraserConfig{Service: w.svc, Media: w.media, Compactor: cc})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	if cc.n != 1 {
		t.Errorf("%d rewrites for 3 erasures, want 1", cc.n)
	}
	for _, code := range codes {
		if job, err := w.svc.Erasure(ctx, code); err != nil || job.Status != inbox.ErasureCompleted {
			t.Errorf("job %s: %+v, %v", code, job, err)
		}
	}
	for _, m := range []string{"FIRST-0c1d", "SECOND-8e2f", "THIRD-4a6b"} {
		if hits := filesHolding(t, w.dir, []byte(m)); len(hits) > 0 {
			t.Errorf("%s still in %v", m, hits)
		}
	}
	// Nothing pending: no rewrite.
	if err := e.RunPending(ctx); err != nil || cc.n != 1 {
		t.Errorf("idle run: %d rewrites, %v", cc.n, err)
	}
}
