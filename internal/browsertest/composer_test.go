package browsertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestComposerFileAndProduct: an agent attaches a picture, sends it, and it
// shows in the conversation (loaded through its signed URL); then picks a
// catalog product, sends it, and its card shows; on SMS the product goes to
// the gateway as text.
func TestComposerFileAndProduct(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Media Shop")
	gw := newGateway(t)
	srv.withSMS(&tn, gw)
	var prod struct{ Product struct{ ID string } }
	srv.call("POST", "/api/v1/catalog/products", tn.adminToken, map[string]any{
		"sku": "MUG-01", "title": "Blue enamel mug", "price": map[string]any{"amount_minor": 1490, "currency": "EUR"}, "available": true,
	}, &prod, 201)
	web := srv.customer(tn, "+4915100000061", "Lea Vogel", "Can you show me the scratch you mean?")
	sms := srv.smsCustomer(tn, "+4915100000062", "Do you sell mugs?")

	img := image.NewRGBA(image.Rect(0, 0, 48, 32))
	for x := 0; x < 48; x++ {
		for y := 0; y < 32; y++ {
			img.Set(x, y, color.RGBA{uint8(x * 5), 90, uint8(y * 7), 255})
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	file := filepath.Join(t.TempDir(), "scratch.png")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx := tab(t, e, false)
	signInUI(t, ctx, srv.base, tn.adminKey)
	waitJS(t, ctx, `!document.getElementById("attach").hidden && !document.getElementById("product").hidden`, 10*time.Second)

	// A picture, uploaded and sent with a caption.
	openRow(t, ctx, web)
	waitJS(t, ctx, `document.getElementById("t-name").textContent === "Lea Vogel"`, 5*time.Second)
	do(t, ctx, chromedp.SetUploadFiles(chromedp.ID("file"), []string{file}))
	waitJS(t, ctx, `!document.getElementById("attach-preview").hidden && document.getElementById("attach-preview").textContent.includes("scratch.png (")`, 10*time.Second)
	do(t, ctx, chromedp.SendKeys(chromedp.ID("text"), "This one, on the left side."), chromedp.KeyEvent("\r"))
	waitJS(t, ctx, `[...document.querySelectorAll("#msg-list li.msg.out:not(.local) .media-img img")].some(i => i.complete && i.naturalWidth === 48 && i.naturalHeight === 32)`, 10*time.Second)
	waitJS(t, ctx, `document.getElementById("attach-preview").hidden`, 2*time.Second)
	var media int
	for _, m := range srv.messages(tn.adminToken, web) {
		if m.Direction == "out" {
			media++
			if m.Text != "This one, on the left side." {
				t.Errorf("picture caption = %q", m.Text)
			}
		}
	}
	if media != 1 {
		t.Errorf("%d replies stored, want 1", media)
	}

	// A product, picked from the catalog. The reply moved the picture's
	// conversation to the top; click once the list has settled.
	waitJS(t, ctx, fmt.Sprintf(`document.querySelector("#conv-list li").dataset.id === %q`, web), 5*time.Second)
	openRow(t, ctx, sms)
	waitJS(t, ctx, `document.getElementById("t-name").textContent === "+4915100000062"`, 5*time.Second)
	click(t, ctx, "#product")
	waitJS(t, ctx, `document.getElementById("dialog").open && !!document.querySelector(".product-pick")`, 5*time.Second)
	do(t, ctx, chromedp.SendKeys(chromedp.ID("product-q"), "mug"))
	click(t, ctx, fmt.Sprintf(`.product-pick[data-id=%q]`, prod.Product.ID))
	waitJS(t, ctx, `!document.getElementById("dialog").open && document.getElementById("attach-preview").textContent.includes("Blue enamel mug")`, 3*time.Second)
	do(t, ctx, chromedp.KeyEvent("\r"))
	waitJS(t, ctx, `[...document.querySelectorAll("#msg-list li.msg.out:not(.local) .product-card")].some(c => c.textContent.includes("Blue enamel mug") && c.textContent.includes("MUG-01") && /14[.,]90/.test(c.textContent))`, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		gw.mu.Lock()
		var got []string
		for _, s := range gw.sends {
			got = append(got, s.Text)
		}
		gw.mu.Unlock()
		if len(got) == 1 {
			if !strings.Contains(got[0], "Blue enamel mug") {
				t.Errorf("the product went to the gateway as %q", got[0])
			}
			break
		}
		if len(got) > 1 || time.Now().After(deadline) {
			t.Fatalf("gateway sends = %q, want the product once", got)
		}
		select {
		case <-gw.seen:
		case <-time.After(time.Until(deadline)):
		}
	}
}

// testPNG is a small picture with a gradient, as a customer's photo.
func testPNG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			img.Set(x, y, color.RGBA{uint8(40 + x*150/w), uint8(110 + y*80/h), 200, 255})
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}

// upload stores a file through POST /api/v1/media and returns its id.
func (s *server) upload(token, name string, data []byte) string {
	s.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	h.Set("Content-Type", "image/png")
	part, _ := mw.CreatePart(h)
	part.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", s.base+"/api/v1/media", &body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var r struct{ Media struct{ ID string } }
	if res.StatusCode != 201 || json.NewDecoder(res.Body).Decode(&r) != nil || r.Media.ID == "" {
		s.t.Fatalf("upload %s = %d", name, res.StatusCode)
	}
	return r.Media.ID
}
