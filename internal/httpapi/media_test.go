package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/media"
)

// mediaClock is the media store's clock, so tests can let URLs expire.
type mediaClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *mediaClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *mediaClock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// newMediaHarness is a harness whose server has a media store in a temp
// dir, uploads up to maxUpload bytes and JSON bodies up to 64 KiB.
func newMediaHarness(t *testing.T, maxUpload int) (*harness, *mediaClock) {
	t.Helper()
	clk := &mediaClock{}
	return newHarness(t, withMedia(t, maxUpload, clk)), clk
}

// withMedia gives the harness's server a media store in a temp dir that
// keeps files of up to maxUpload bytes, on clk.
func withMedia(t *testing.T, maxUpload int, clk *mediaClock) harnessOpt {
	return withConfig(func(cfg *Config) {
		ms, err := media.New(context.Background(), media.Config{
			Dir: filepath.Join(t.TempDir(), "media"), Service: cfg.Service, MaxSize: int64(maxUpload), Now: clk.now,
		})
		if err != nil {
			t.Fatalf("media store: %v", err)
		}
		cfg.Service.SetMediaURLs(ms.SignURLs)
		cfg.Media, cfg.MaxUpload = ms, maxUpload
	})
}

type mediaJSON struct {
	ID           string `json:"id"`
	Mime         string `json:"mime"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	URL          string `json:"url"`
	ThumbnailURL string `json:"thumbnail_url"`
	Name         string `json:"name"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
}

// multipartBody is a form with one file field.
func multipartBody(t *testing.T, field, name, contentType string, data []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, field, name))
	if contentType != "" {
		hdr.Set("Content-Type", contentType)
	}
	part, err := w.CreatePart(hdr)
	if err != nil {
		t.Fatal(err)
	}
	part.Write(data)
	w.Close()
	return w.FormDataContentType(), b.Bytes()
}

func (h *harness) upload(token, name, contentType string, data []byte) *response {
	h.t.Helper()
	ct, body := multipartBody(h.t, "file", name, contentType, data)
	return h.req("POST", "/api/v1/media", token, raw(body), "Content-Type", ct)
}

func (h *harness) uploadOK(token, name string, data []byte) mediaJSON {
	h.t.Helper()
	var got struct {
		Media mediaJSON `json:"media"`
	}
	h.want(h.upload(token, name, "", data), 201).json(h.t, &got)
	return got.Media
}

func pdfBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return append([]byte("%PDF-1.5\n"), b...)
}

func pngBytes(t *testing.T, w, hgt int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, hgt))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	img.Set(0, 0, color.Black)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMediaUploadDownloadRoundTrip(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	data := pdfBytes(300_000)
	m := h.uploadOK(tm.agentToken, "Factura março.pdf", data)
	sum := sha256.Sum256(data)
	if m.ID == "" || m.Mime != "application/pdf" || m.Size != int64(len(data)) || m.SHA256 != hex.EncodeToString(sum[:]) || m.Name != "Factura março.pdf" {
		t.Fatalf("media = %+v", m)
	}

	r := h.want(h.req("GET", "/api/v1/media/"+m.ID, tm.adminToken, nil), 200)
	if !bytes.Equal(r.body, data) {
		t.Fatalf("downloaded %d bytes, not the %d uploaded", len(r.body), len(data))
	}
	for k, want := range map[string]string{
		"Content-Type":           "application/pdf",
		"Content-Length":         fmt.Sprint(len(data)),
		"Etag":                   `"` + m.SHA256 + `"`,
		"Accept-Ranges":          "bytes",
		"X-Content-Type-Options": "nosniff",
		"Content-Disposition":    `attachment; filename="Factura mar_o.pdf"; filename*=UTF-8''Factura%20mar%C3%A7o.pdf`,
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("CSP %q does not sandbox the file", csp)
	}
	// A cached copy is revalidated without sending the bytes again.
	r = h.req("GET", "/api/v1/media/"+m.ID, tm.adminToken, nil, "If-None-Match", `"`+m.SHA256+`"`)
	if r.status != 304 || len(r.body) != 0 {
		t.Errorf("If-None-Match: %d with %d bytes, want 304 and none", r.status, len(r.body))
	}
	r = h.want(h.req("HEAD", "/api/v1/media/"+m.ID, tm.adminToken, nil), 200)
	if r.header.Get("Content-Length") != fmt.Sprint(len(data)) || len(r.body) != 0 {
		t.Errorf("HEAD: Content-Length %q, %d body bytes", r.header.Get("Content-Length"), len(r.body))
	}

	// The signed URL works with no credentials at all, as <img src> does.
	r = h.want(h.req("GET", m.URL, "", nil), 200)
	if !bytes.Equal(r.body, data) {
		t.Error("signed URL served other bytes")
	}
}

func TestMediaImageThumbnail(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	m := h.uploadOK(tm.agentToken, "mug.png", pngBytes(t, 900, 600))
	if m.Mime != "image/png" || m.Width != 900 || m.Height != 600 || m.ThumbnailURL == "" {
		t.Fatalf("media = %+v", m)
	}
	r := h.want(h.req("GET", m.ThumbnailURL, "", nil), 200)
	cfg, format, err := image.DecodeConfig(bytes.NewReader(r.body))
	if err != nil || cfg.Width != media.ThumbSize || cfg.Height != 213 {
		t.Fatalf("thumbnail %s %dx%d (%v), want %dx213", format, cfg.Width, cfg.Height, err, media.ThumbSize)
	}
	if ct := r.header.Get("Content-Type"); ct != "image/"+format || !strings.HasPrefix(r.header.Get("Content-Disposition"), "inline;") {
		t.Errorf("thumbnail Content-Type %q, disposition %q", ct, r.header.Get("Content-Disposition"))
	}
	// A small image is its own thumbnail.
	small := h.uploadOK(tm.agentToken, "dot.png", pngBytes(t, 40, 40))
	r = h.want(h.req("GET", "/api/v1/media/"+small.ID+"/thumbnail", tm.agentToken, nil), 200)
	if orig := h.want(h.req("GET", "/api/v1/media/"+small.ID, tm.agentToken, nil), 200); !bytes.Equal(r.body, orig.body) {
		t.Error("a small image's thumbnail is not the image")
	}
}

func TestMediaRanges(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	data := pdfBytes(10_000)
	m := h.uploadOK(tm.agentToken, "a.pdf", data)
	path := "/api/v1/media/" + m.ID
	size := len(data)
	for _, tc := range []struct {
		rng        string
		from, to   int // inclusive; -1: whole file with 200
		wantStatus int
	}{
		{"bytes=0-99", 0, 99, 206},
		{"bytes=100-", 100, size - 1, 206},
		{"bytes=-500", size - 500, size - 1, 206},
		{"bytes=9000-999999", 9000, size - 1, 206},
		{"bytes=5-5", 5, 5, 206},
		{"bytes=0-1,5-6", -1, -1, 200},
		{"lines=1-2", -1, -1, 200},
		{"bytes=20-10", -1, -1, 200},
	} {
		r := h.req("GET", path, tm.agentToken, nil, "Range", tc.rng)
		if r.status != tc.wantStatus {
			t.Errorf("Range %s: status %d, want %d", tc.rng, r.status, tc.wantStatus)
			continue
		}
		want, cr := data, ""
		if tc.from >= 0 {
			want, cr = data[tc.from:tc.to+1], fmt.Sprintf("bytes %d-%d/%d", tc.from, tc.to, size)
		}
		if !bytes.Equal(r.body, want) || r.header.Get("Content-Range") != cr || r.header.Get("Content-Length") != fmt.Sprint(len(want)) {
			t.Errorf("Range %s: %d bytes, Content-Range %q, Content-Length %q; want %d bytes, %q",
				tc.rng, len(r.body), r.header.Get("Content-Range"), r.header.Get("Content-Length"), len(want), cr)
		}
	}
	r := h.req("GET", path, tm.agentToken, nil, "Range", fmt.Sprintf("bytes=%d-", size))
	checkErr(t, r, 416, "invalid")
	if r.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
		t.Errorf("416 Content-Range %q", r.header.Get("Content-Range"))
	}
	// If-Range with another validator: the whole, current file.
	r = h.want(h.req("GET", path, tm.agentToken, nil, "Range", "bytes=0-9", "If-Range", `"stale"`), 200)
	if len(r.body) != size {
		t.Errorf("If-Range mismatch served %d bytes, want the whole file", len(r.body))
	}
}

func TestMediaLimits(t *testing.T) {
	const maxUpload = 200 << 10 // JSON bodies stay at the harness's 64 KiB
	h, _ := newMediaHarness(t, maxUpload)
	tm := h.newTeam("Acme")
	before := h.head(tm.adminToken)
	// Larger than any JSON body, within the upload limit: accepted.
	h.uploadOK(tm.agentToken, "ok.pdf", pdfBytes(150<<10))
	// One byte over: a clean 413.
	over := pdfBytes(maxUpload - 9 + 1)
	if len(over) != maxUpload+1 {
		t.Fatalf("test file is %d bytes", len(over))
	}
	checkErr(t, h.upload(tm.agentToken, "over.pdf", "application/pdf", over), 413, "too_large")
	// Far over: refused while reading (fasthttp's limit). The server
	// answers 413 and closes the connection without reading the rest, so a
	// client still sending may see the reset before it reads the answer;
	// either way nothing is stored (checked below).
	ct, body := multipartBody(t, "file", "huge.pdf", "application/pdf", pdfBytes(2<<20))
	req, _ := http.NewRequest("POST", h.url+"/api/v1/media", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tm.agentToken)
	req.Header.Set("Content-Type", ct)
	resp, err := h.client.Do(req)
	switch {
	case err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE):
		t.Errorf("2 MiB upload: %v, want 413 or a reset", err)
	case err == nil:
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("2 MiB upload: status %d, want 413", resp.StatusCode)
		}
	}
	// JSON routes keep their own, smaller limit.
	big := fmt.Sprintf(`{"name":"x","email":"a@b.example","role":"agent","pad":%q}`, strings.Repeat("x", 100<<10))
	checkErr(t, h.req("POST", "/api/v1/agents", tm.adminToken, raw(big)), 413, "too_large")
	h.unchanged(tm.adminToken, before)
}

func TestMediaRefusesDisallowedTypes(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	exe := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), bytes.Repeat([]byte{0}, 500)...)
	for name, tc := range map[string]struct {
		file, ct string
		data     []byte
	}{
		"exe renamed jpg": {"holiday.jpg", "image/jpeg", exe},
		"html":            {"page.png", "image/png", []byte("<html><body><script>alert(document.cookie)</script>")},
		"svg":             {"logo.svg", "image/svg+xml", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`)},
		"zip":             {"photos.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00")},
	} {
		r := h.upload(tm.agentToken, tc.file, tc.ct, tc.data)
		checkErr(t, r, 415, "unsupported_media_type")
		if r.status == 415 && !strings.Contains(errMessage(t, r), "not accepted") {
			t.Errorf("%s: message %q", name, errMessage(t, r))
		}
	}
	for name, r := range map[string]*response{
		"no file field": func() *response {
			ct, body := multipartBody(t, "attachment", "a.pdf", "", pdfBytes(10))
			return h.req("POST", "/api/v1/media", tm.agentToken, raw(body), "Content-Type", ct)
		}(),
		"not multipart": h.req("POST", "/api/v1/media", tm.agentToken, raw(pdfBytes(10)), "Content-Type", "application/pdf"),
		"empty file":    h.upload(tm.agentToken, "empty.pdf", "application/pdf", nil),
	} {
		if r.status != 400 {
			t.Errorf("%s: %s, want 400", name, r)
		}
	}
	checkErr(t, h.upload("", "a.pdf", "", pdfBytes(10)), 401, "unauthorized")
}

func TestMediaTenantIsolation(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	a, b := h.newTeam("Acme"), h.newTeam("Globex")
	data := pdfBytes(1000)
	ma := h.uploadOK(a.agentToken, "a.pdf", data)
	// B cannot read A's media by id, whatever the route.
	for _, p := range []string{"/api/v1/media/" + ma.ID, "/api/v1/media/" + ma.ID + "/thumbnail"} {
		checkErr(t, h.req("GET", p, b.adminToken, nil), 404, "not_found")
	}
	// The same bytes uploaded by B are B's own media.
	mb := h.uploadOK(b.agentToken, "a.pdf", data)
	if mb.ID == ma.ID {
		t.Fatal("two tenants share a media id")
	}
	// A's signature does not open B's media.
	u, _ := url.Parse(ma.URL)
	checkErr(t, h.req("GET", "/api/v1/media/"+mb.ID+"?"+u.RawQuery, "", nil), 401, "unauthorized")
	// Nor can B send A's media into B's conversations.
	conv, _ := h.receive(b, "+15550001", "hi")
	r := h.req("POST", "/api/v1/conversations/"+conv+"/messages", b.agentToken, map[string]any{"client_id": newClientID(), "media_id": ma.ID})
	checkErr(t, r, 400, "invalid")
}

func TestMediaSignedURLs(t *testing.T) {
	h, clk := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	m := h.uploadOK(tm.agentToken, "a.pdf", pdfBytes(100))
	u, _ := url.Parse(m.URL)
	q := u.Query()
	exp, sig := q.Get("exp"), q.Get("sig")
	base := "/api/v1/media/" + m.ID
	for name, path := range map[string]string{
		"tampered sig":    base + "?exp=" + exp + "&sig=" + strings.Repeat("A", len(sig)),
		"later exp":       base + "?exp=" + exp + "9&sig=" + sig,
		"no sig":          base + "?exp=" + exp,
		"no exp":          base + "?sig=" + sig,
		"unknown media":   "/api/v1/media/01a00000-0000-7000-8000-000000000000?exp=" + exp + "&sig=" + sig,
		"no credentials":  base,
		"bad bearer":      base + "?exp=" + exp + "&sig=" + sig + "#", // with the header below
		"thumbnail token": base + "/thumbnail?exp=1&sig=" + sig,
	} {
		hdr := []string{}
		if name == "bad bearer" {
			hdr = []string{"Authorization", "Bearer obs_nope"}
		}
		checkErr(t, h.req("GET", path, "", nil, hdr...), 401, "unauthorized")
	}
	h.want(h.req("GET", m.URL, "", nil), 200)
	// Listing messages hands out fresh URLs; old ones expire.
	clk.advance(media.DefaultURLTTL + 2*time.Hour)
	checkErr(t, h.req("GET", m.URL, "", nil), 401, "unauthorized")
	conv, _ := h.receive(tm, "+15550009", "send me the invoice")
	var sent struct {
		Message struct {
			Media mediaJSON `json:"media"`
		} `json:"message"`
	}
	h.want(h.req("POST", "/api/v1/conversations/"+conv+"/messages", tm.agentToken, map[string]any{"client_id": newClientID(), "media_id": m.ID}), 201).json(t, &sent)
	if sent.Message.Media.URL == m.URL {
		t.Fatal("the message carries the expired URL")
	}
	h.want(h.req("GET", sent.Message.Media.URL, "", nil), 200)
}

func TestMessagesWithMediaAndProducts(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	conv, _ := h.receive(tm, "+15550001", "do you have the blue mug?")
	img := h.uploadOK(tm.agentToken, "mug.png", pngBytes(t, 600, 600))
	path := "/api/v1/conversations/" + conv + "/messages"

	type msg struct {
		Kind    string     `json:"kind"`
		Text    string     `json:"text"`
		Status  string     `json:"status"`
		Media   *mediaJSON `json:"media"`
		Product *struct {
			ID    string `json:"id"`
			Title string `json:"title"`
			Price struct {
				AmountMinor int64  `json:"amount_minor"`
				Currency    string `json:"currency"`
			} `json:"price"`
			Image *mediaJSON `json:"image"`
		} `json:"product"`
	}
	var photo struct{ Message msg }
	h.want(h.req("POST", path, tm.agentToken, map[string]any{"client_id": newClientID(), "media_id": img.ID, "text": "This one?"}), 201).json(t, &photo)
	if photo.Message.Kind != "image" || photo.Message.Text != "This one?" || photo.Message.Media == nil || photo.Message.Media.ID != img.ID || photo.Message.Status != "pending" {
		t.Fatalf("image message %+v", photo.Message)
	}
	h.want(h.req("GET", photo.Message.Media.URL, "", nil), 200)

	var created struct{ Product struct{ ID string } }
	h.want(h.req("POST", "/api/v1/catalog/products", tm.adminToken, map[string]any{
		"sku": "MUG-BLUE", "title": "Blue mug", "description": "350 ml", "price": map[string]any{"amount_minor": 1250, "currency": "EUR"}, "image_media_id": img.ID,
	}), 201).json(t, &created)
	var card struct{ Message msg }
	h.want(h.req("POST", path, tm.agentToken, map[string]any{"client_id": newClientID(), "product_id": created.Product.ID}), 201).json(t, &card)
	p := card.Message.Product
	if card.Message.Kind != "product" || p == nil || p.Title != "Blue mug" || p.Price.AmountMinor != 1250 || p.Image == nil || p.Image.URL == "" {
		t.Fatalf("product message %+v", card.Message)
	}
	h.want(h.req("GET", p.Image.URL, "", nil), 200)
	// The catalog changes; the conversation still shows what was sent.
	h.want(h.req("PATCH", "/api/v1/catalog/products/"+created.Product.ID, tm.adminToken, map[string]any{"title": "Navy mug", "price": map[string]any{"amount_minor": 1500, "currency": "EUR"}}), 200)
	var list struct{ Messages []msg }
	h.want(h.req("GET", path, tm.agentToken, nil), 200).json(t, &list)
	last := list.Messages[len(list.Messages)-1]
	if last.Product == nil || last.Product.Title != "Blue mug" || last.Product.Price.AmountMinor != 1250 {
		t.Errorf("snapshot after the product changed: %+v", last.Product)
	}
	checkErr(t, h.req("POST", path, tm.agentToken, map[string]any{"client_id": newClientID(), "product_id": "nope"}), 400, "invalid")
}

func TestMediaUnavailableWithoutStore(t *testing.T) {
	h := newHarness(t)
	tm := h.newTeam("Acme")
	checkErr(t, h.upload(tm.agentToken, "a.pdf", "", pdfBytes(10)), 503, "unavailable")
	checkErr(t, h.req("GET", "/api/v1/media/x", tm.agentToken, nil), 503, "unavailable")
}

// Compile-time check that the store is what the service's hook expects.
var _ inbox.MediaURLs = (*media.Store)(nil).SignURLs
