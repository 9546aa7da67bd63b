package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"image/color"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	svc    *inbox.Service
	store  *Store
	dir    string
	clock  *clock
	a, b   inbox.Principal
	chanID string
}

func newEnv(t *testing.T, maxSize int64) *env {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "onebox.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{now: time.Now().UTC()}
	svc, err := inbox.NewService(inbox.Config{Store: db, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{svc: svc, clock: clk, dir: filepath.Join(t.TempDir(), "media")}
	ctx := context.Background()
	for _, p := range []*inbox.Principal{&e.a, &e.b} {
		_, _, _, key, err := svc.CreateTenant(ctx, "T")
		if err != nil {
			t.Fatal(err)
		}
		if *p, _, err = svc.SignIn(ctx, key, inbox.Device{}); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := svc.CreateChannel(ctx, e.a, inbox.ChannelDemo, "Demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.chanID = ch.ID
	// These tests move the store's clock, not the files' times: no grace
	// (TestCleanupSparesAnotherProcessUpload has one).
	e.store, err = New(ctx, Config{Dir: e.dir, Service: svc, PublicURL: "https://support.example.com/", MaxSize: maxSize, Now: clk.Now, Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetMediaURLs(e.store.SignURLs)
	return e
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// pdf is a file of an accepted type with random content.
func pdf(n int) []byte { return append([]byte("%PDF-1.4\n"), randomBytes(n)...) }

func (e *env) save(t *testing.T, p inbox.Principal, data []byte, name string) *inbox.Media {
	t.Helper()
	m, err := e.store.Save(context.Background(), p.Tenant.ID, bytes.NewReader(data), name, "")
	if err != nil {
		t.Fatalf("save %s: %v", name, err)
	}
	return m
}

func readAll(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSaveAndOpen(t *testing.T) {
	e := newEnv(t, 1<<20)
	ctx := context.Background()
	data := pdf(100_000)
	m := e.save(t, e.a, data, `..\../invoice "march".pdf`)
	if m.Mime != "application/pdf" || m.Size != int64(len(data)) || len(m.SHA256) != 64 || m.ID == "" {
		t.Fatalf("media = %+v", m)
	}
	if m.Name != `invoice "march".pdf` {
		t.Errorf("name = %q, want the base name only", m.Name)
	}
	if !strings.HasPrefix(m.URL, "/api/v1/media/"+m.ID+"?exp=") || !strings.Contains(m.URL, "&sig=") || m.ThumbnailURL != "" {
		t.Errorf("url = %q, thumbnail_url = %q", m.URL, m.ThumbnailURL)
	}
	r, rec, err := e.store.Open(ctx, e.a.Tenant.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, not the %d saved", len(got), len(data))
	}
	if rec.Mime != "application/pdf" || rec.Size != int64(len(data)) {
		t.Errorf("record = %+v", rec)
	}
	// Another tenant cannot open it by id.
	if _, _, err := e.store.Open(ctx, e.b.Tenant.ID, m.ID); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Errorf("open from tenant B: %v, want not found", err)
	}
}

func TestSaveDeduplicatesPerTenant(t *testing.T) {
	e := newEnv(t, 1<<20)
	data := pdf(5000)
	first := e.save(t, e.a, data, "a.pdf")
	again := e.save(t, e.a, data, "copy.pdf")
	if again.ID != first.ID {
		t.Errorf("same bytes saved twice got ids %s and %s, want one", first.ID, again.ID)
	}
	other := e.save(t, e.b, data, "a.pdf")
	if other.ID == first.ID {
		t.Error("two tenants share a media id")
	}
	files := 0
	filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(e.dir, p); err == nil && !d.IsDir() && !strings.HasPrefix(rel, "tmp") {
			files++
		}
		return nil
	})
	if files != 2 {
		t.Errorf("%d files on disk, want 2 (one per tenant)", files)
	}
}

func TestSaveRefuses(t *testing.T) {
	e := newEnv(t, 1000)
	ctx := context.Background()
	_, err := e.store.Save(ctx, e.a.Tenant.ID, bytes.NewReader(pdf(1000)), "big.pdf", "application/pdf")
	if inbox.ErrorCode(err) != inbox.CodeTooLarge {
		t.Errorf("over the limit: %v, want too_large", err)
	}
	exe := append([]byte("MZ\x90\x00"), randomBytes(200)...)
	_, err = e.store.Save(ctx, e.a.Tenant.ID, bytes.NewReader(exe), "cat.jpg", "image/jpeg")
	var te *TypeError
	if !errors.As(err, &te) || te.Mime != "application/octet-stream" {
		t.Errorf("executable named cat.jpg: %v, want a TypeError", err)
	}
	_, err = e.store.Save(ctx, e.a.Tenant.ID, bytes.NewReader(nil), "empty.pdf", "")
	if inbox.ErrorCode(err) != inbox.CodeInvalid {
		t.Errorf("empty file: %v, want invalid", err)
	}
	_, err = e.store.Save(ctx, "../../etc", bytes.NewReader(pdf(10)), "x.pdf", "")
	if inbox.ErrorCode(err) != inbox.CodeInvalid {
		t.Errorf("bad tenant id: %v, want invalid", err)
	}
	// Nothing was left behind: no records, no files, no temporaries.
	entries, _ := os.ReadDir(filepath.Join(e.dir, "tmp"))
	if len(entries) != 0 {
		t.Errorf("%d temporary files left", len(entries))
	}
	if _, err := os.Stat(filepath.Join(e.dir, e.a.Tenant.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused files created the tenant's directory: %v", err)
	}
}

func TestImageGetsThumbnailAndSize(t *testing.T) {
	e := newEnv(t, 1<<20)
	m := e.save(t, e.a, encodeJPEG(t, halves(1000, 500)), "photo.jpg")
	if m.Mime != "image/jpeg" || m.Width != 1000 || m.Height != 500 {
		t.Fatalf("media = %+v", m)
	}
	if !strings.HasPrefix(m.ThumbnailURL, "/api/v1/media/"+m.ID+"/thumbnail?exp=") {
		t.Errorf("thumbnail_url = %q", m.ThumbnailURL)
	}
	rec, err := e.svc.TenantMedia(context.Background(), e.a.Tenant.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	rec.TenantID = e.a.Tenant.ID
	f, typ, size, err := e.store.OpenFile(rec, true)
	if err != nil {
		t.Fatal(err)
	}
	thumb := readAll(t, f)
	if typ != "image/jpeg" || size != int64(len(thumb)) || size >= m.Size {
		t.Errorf("thumbnail %s of %d bytes for a %d-byte image", typ, size, m.Size)
	}
}

func TestSignedURLs(t *testing.T) {
	e := newEnv(t, 1<<20)
	m := e.save(t, e.a, pdf(10), "a.pdf")
	u, err := url.Parse(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	exp, sig := u.Query().Get("exp"), u.Query().Get("sig")
	if !e.store.Valid(e.a.Tenant.ID, m.ID, exp, sig) {
		t.Fatal("a fresh URL is not valid")
	}
	for name, ok := range map[string]bool{
		"other tenant": e.store.Valid(e.b.Tenant.ID, m.ID, exp, sig),
		"other media":  e.store.Valid(e.a.Tenant.ID, uuid.NewString(), exp, sig),
		"later expiry": e.store.Valid(e.a.Tenant.ID, m.ID, exp+"0", sig),
		"no signature": e.store.Valid(e.a.Tenant.ID, m.ID, exp, ""),
		"bad expiry":   e.store.Valid(e.a.Tenant.ID, m.ID, "soon", sig),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
	// The same URL for an hour (browsers cache it), then a new one.
	e.clock.advance(time.Minute)
	m2 := &inbox.Media{ID: m.ID, Mime: m.Mime}
	e.store.SignURLs(e.a.Tenant.ID, m2)
	e.clock.advance(DefaultURLTTL + time.Hour)
	if e.store.Valid(e.a.Tenant.ID, m.ID, exp, sig) {
		t.Error("an expired URL is still valid")
	}
	pub, err := url.Parse(e.store.PublicURL(e.a.Tenant.ID, m.ID, time.Hour))
	if err != nil || pub.Scheme != "https" || pub.Host != "support.example.com" || pub.Path != "/api/v1/media/"+m.ID {
		t.Fatalf("public URL %v (%v)", pub, err)
	}
	if !e.store.Valid(e.a.Tenant.ID, m.ID, pub.Query().Get("exp"), pub.Query().Get("sig")) {
		t.Error("the public URL's signature is not valid")
	}
}

func TestSigningKeySurvivesRestart(t *testing.T) {
	e := newEnv(t, 1<<20)
	m := e.save(t, e.a, pdf(10), "a.pdf")
	u, _ := url.Parse(m.URL)
	again, err := New(context.Background(), Config{Dir: e.dir, Service: e.svc, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Valid(e.a.Tenant.ID, m.ID, u.Query().Get("exp"), u.Query().Get("sig")) {
		t.Error("a URL signed before a restart is refused after it")
	}
}

func (e *env) exists(t *testing.T, p inbox.Principal, m *inbox.Media) bool {
	t.Helper()
	_, err := e.svc.MediaOf(context.Background(), p, m.ID)
	if err != nil && inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Fatal(err)
	}
	_, statErr := os.Stat(filepath.Join(e.dir, p.Tenant.ID, m.SHA256[:2], m.SHA256))
	if (err == nil) != (statErr == nil) {
		t.Fatalf("media %s: record err %v but file err %v", m.ID, err, statErr)
	}
	return err == nil
}

func TestCleanupRemovesOnlyUnusedMedia(t *testing.T) {
	e := newEnv(t, 1<<20)
	ctx := context.Background()
	unused := e.save(t, e.a, pdf(100), "unused.pdf")
	sent := e.save(t, e.a, pdf(100), "sent.pdf")
	picture := e.save(t, e.a, encodePNG(t, solid(500, 400, color.White)), "mug.png")
	late := e.save(t, e.a, pdf(100), "late.pdf")

	// A customer writes; an agent answers with a file; a product shows
	// the picture.
	got, err := e.svc.Receive(ctx, e.chanID, []inbox.Inbound{{ContactHandle: "+1555", Text: "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.SendMessage(ctx, e.a, got[0].Message.ConversationID, inbox.Draft{ClientID: uuid.NewString(), MediaID: sent.ID}); err != nil {
		t.Fatal(err)
	}
	sku, title, price, img := "MUG-1", "Mug", inbox.Price{AmountMinor: 1200, Currency: "EUR"}, picture.ID
	prod, err := e.svc.CreateProduct(ctx, e.a, inbox.ProductDraft{SKU: &sku, Title: &title, Price: &price, ImageSet: true, ImageMediaID: &img})
	if err != nil {
		t.Fatal(err)
	}

	// Not a day yet: nothing goes.
	e.clock.advance(23 * time.Hour)
	if err := e.store.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.exists(t, e.a, unused) {
		t.Fatal("unused media removed before a day had passed")
	}
	// Uploading the same bytes again gives it another day.
	e.save(t, e.a, mustRead(t, e, late), "late again.pdf")

	e.clock.advance(2 * time.Hour)
	if err := e.store.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if e.exists(t, e.a, unused) {
		t.Error("unused media kept after a day")
	}
	for name, m := range map[string]*inbox.Media{"sent": sent, "product picture": picture, "re-uploaded": late} {
		if !e.exists(t, e.a, m) {
			t.Errorf("%s media removed", name)
		}
	}

	// Deleting the product frees its picture, which goes a day later.
	if err := e.svc.DeleteProduct(ctx, e.a, prod.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.advance(25 * time.Hour)
	if err := e.store.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if e.exists(t, e.a, picture) {
		t.Error("the deleted product's picture was kept")
	}
	if _, err := os.Stat(filepath.Join(e.dir, e.a.Tenant.ID, picture.SHA256[:2], picture.SHA256+".thumb")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("its thumbnail is still on disk: %v", err)
	}
	if !e.exists(t, e.a, sent) {
		t.Error("media of a sent message removed")
	}
}

func mustRead(t *testing.T, e *env, m *inbox.Media) []byte {
	t.Helper()
	r, _, err := e.store.Open(context.Background(), e.a.Tenant.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, r)
}

func TestCleanupSweepsFilesWithoutRecord(t *testing.T) {
	e := newEnv(t, 1<<20)
	ctx := context.Background()
	kept := e.save(t, e.a, pdf(100), "kept.pdf")
	// What a crash between writing a file and recording it leaves.
	stray := strings.Repeat("ab", 32)
	dir := filepath.Join(e.dir, e.a.Tenant.ID, "ab")
	os.MkdirAll(dir, 0o700)
	for _, name := range []string{stray, stray + ".thumb"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(e.dir, "tmp", "upload-123")
	os.WriteFile(tmp, []byte("partial"), 0o600)
	// Files are dated by the real clock: make these two days old.
	old := time.Now().Add(-48 * time.Hour)
	keptPath := filepath.Join(e.dir, e.a.Tenant.ID, kept.SHA256[:2], kept.SHA256)
	for _, p := range []string{filepath.Join(dir, stray), filepath.Join(dir, stray+".thumb"), tmp, keptPath} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	recent := filepath.Join(e.dir, "tmp", "upload-456")
	os.WriteFile(recent, []byte("in progress"), 0o600)
	// The message keeps kept alive.
	got, _ := e.svc.Receive(ctx, e.chanID, []inbox.Inbound{{ContactHandle: "+1555", Text: "hi"}})
	e.svc.SendMessage(ctx, e.a, got[0].Message.ConversationID, inbox.Draft{ClientID: uuid.NewString(), MediaID: kept.ID})
	e.clock.advance(25 * time.Hour)
	if err := e.store.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, stray), filepath.Join(dir, stray+".thumb"), tmp} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the sweep", p)
		}
	}
	if !e.exists(t, e.a, kept) {
		t.Error("the sweep removed a recorded file")
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("an upload in progress was swept: %v", err)
	}
}

func TestConcurrentSaveAndCleanup(t *testing.T) {
	// Cleanup of a media and a new upload of the same bytes race; whatever
	// the order, a record never points at a missing file.
	e := newEnv(t, 1<<20)
	ctx := context.Background()
	data := pdf(2000)
	for i := 0; i < 20; i++ {
		e.save(t, e.a, data, "a.pdf")
		e.clock.advance(25 * time.Hour)
		var wg sync.WaitGroup
		wg.Add(2)
		var saved *inbox.Media
		var saveErr error
		go func() {
			defer wg.Done()
			e.store.Cleanup(ctx)
		}()
		go func() {
			defer wg.Done()
			saved, saveErr = e.store.Save(ctx, e.a.Tenant.ID, bytes.NewReader(data), "a.pdf", "")
		}()
		wg.Wait()
		if saved == nil {
			t.Fatalf("save failed: %v", saveErr)
		}
		if !e.exists(t, e.a, saved) {
			t.Fatalf("round %d: the media just saved has no record or no file", i)
		}
	}
}

// Two processes share the media directory (and the database), and no lock
// spans the two. One's cleanup finds a content unused and is about to
// remove its file just as the other's upload of the same bytes renames a
// fresh copy into place and commits a new record; or the cleanup runs
// between the upload's rename and its commit. Either way the fresh copy is
// spared; an old unused one is still removed in the same run, and a file
// set aside by a cleanup that did not finish is put back.
func TestCleanupSparesAnotherProcessUpload(t *testing.T) {
	e := newEnv(t, 1<<20)
	ctx := context.Background()
	open := func() *Store {
		s, err := New(ctx, Config{Dir: e.dir, Service: e.svc, Now: e.clock.Now, Grace: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cleaner, uploader := open(), open()
	data, other, third := pdf(500), pdf(500), pdf(500)
	first, err := uploader.Save(ctx, e.a.Tenant.ID, bytes.NewReader(data), "a.pdf", "")
	if err != nil {
		t.Fatal(err)
	}
	unused, err := uploader.Save(ctx, e.a.Tenant.ID, bytes.NewReader(other), "b.pdf", "")
	if err != nil {
		t.Fatal(err)
	}
	// Both were uploaded two days ago and never used since.
	age := func(ms ...*inbox.Media) {
		old := time.Now().Add(-48 * time.Hour)
		for _, m := range ms {
			p := filepath.Join(e.dir, e.a.Tenant.ID, m.SHA256[:2], m.SHA256)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.advance(25 * time.Hour)
	}
	age(first, unused)

	var again *inbox.Media
	cleaner.beforeRemove = func(_, sha string) {
		if sha != first.SHA256 || again != nil {
			return
		}
		var err error
		if again, err = uploader.Save(ctx, e.a.Tenant.ID, bytes.NewReader(data), "a again.pdf", ""); err != nil {
			t.Errorf("upload in the other process: %v", err)
		}
	}
	if err := cleaner.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if again == nil {
		t.Fatal("the cleanup never reached the content uploaded again; the test proves nothing")
	}
	if again.ID == first.ID {
		t.Fatalf("the upload reused record %s, which the cleanup had dropped", first.ID)
	}
	r, _, err := uploader.Open(ctx, e.a.Tenant.ID, again.ID)
	if err != nil {
		t.Fatalf("the media uploaded during the cleanup has lost its file: %v", err)
	}
	if got := readAll(t, r); !bytes.Equal(got, data) {
		t.Fatalf("the media uploaded during the cleanup reads %d bytes, want its %d", len(got), len(data))
	}
	if e.exists(t, e.a, unused) {
		t.Error("old unused media kept")
	}

	// The third content: the cleanup runs while its upload, in the other
	// process, has its file in place and its record not yet committed.
	last, err := uploader.Save(ctx, e.a.Tenant.ID, bytes.NewReader(third), "c.pdf", "")
	if err != nil {
		t.Fatal(err)
	}
	age(last)
	ran := false
	uploader.afterPlace = func() {
		if !ran {
			ran = true
			if err := cleaner.Cleanup(ctx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
	late, err := uploader.Save(ctx, e.a.Tenant.ID, bytes.NewReader(third), "c again.pdf", "")
	uploader.afterPlace = nil
	if err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("the cleanup did not run during the upload")
	}
	if _, err := e.svc.MediaOf(ctx, e.a, last.ID); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Errorf("the old record of the third content survived the cleanup (%v); the test proves nothing", err)
	}
	r, _, err = uploader.Open(ctx, e.a.Tenant.ID, late.ID)
	if err != nil {
		t.Fatalf("the media whose upload the cleanup ran into has lost its file: %v", err)
	}
	if got := readAll(t, r); !bytes.Equal(got, third) {
		t.Fatalf("the media whose upload the cleanup ran into reads %d bytes, want %d", len(got), len(third))
	}

	// A cleanup that stopped half way left a recorded file set aside.
	p := filepath.Join(e.dir, e.a.Tenant.ID, again.SHA256[:2], again.SHA256)
	if err := os.Rename(p, p+asideMark+"0123"); err != nil {
		t.Fatal(err)
	}
	if err := cleaner.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustReadFile(t, p); !bytes.Equal(got, data) {
		t.Fatalf("the file set aside was not put back (%d bytes)", len(got))
	}
	if _, err := os.Stat(p + asideMark + "0123"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the copy set aside is still there: %v", err)
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
