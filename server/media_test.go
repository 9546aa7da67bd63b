package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

func (p *proc) upload(token, name string, data []byte) (int, []byte) {
	p.t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	part, _ := w.CreateFormFile("file", name)
	part.Write(data)
	w.Close()
	req, _ := http.NewRequest("POST", p.url+"/api/v1/media", &b)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestCatalogAndMediaThroughTheServer checks the wiring: uploads within
// ONEBOX_MAX_UPLOAD, catalog changes and product messages reaching an
// agent's socket live, and the signed URLs they carry working without
// credentials.
func TestCatalogAndMediaThroughTheServer(t *testing.T) {
	t.Setenv("ONEBOX_MAX_UPLOAD", "300000")
	p := start(t, t.TempDir())
	tm := p.newTeam("Shop")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sock := p.dial(ctx, tm.token, 0)
	if f := sock.next(ctx); f.Type != "welcome" {
		t.Fatalf("first frame %s", f.raw)
	}

	img := image.NewNRGBA(image.Rect(0, 0, 500, 500))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	img.Set(1, 1, color.White)
	var pic bytes.Buffer
	png.Encode(&pic, img)
	st, body := p.upload(tm.token, "mug.png", pic.Bytes())
	if st != 201 {
		t.Fatalf("upload: %d %s", st, body)
	}
	var up struct {
		Media struct{ ID, URL string }
	}
	json.Unmarshal(body, &up)
	if st, _ := p.upload(tm.token, "big.pdf", append([]byte("%PDF-1.4\n"), make([]byte, 300000)...)); st != 413 {
		t.Errorf("upload over ONEBOX_MAX_UPLOAD: %d, want 413", st)
	}

	var created struct{ Product struct{ ID string } }
	if st := p.call("POST", "/api/v1/catalog/products", tm.token, map[string]any{
		"sku": "MUG-1", "title": "Blue mug", "price": map[string]any{"amount_minor": 1250, "currency": "EUR"}, "image_media_id": up.Media.ID,
	}, &created); st != 201 {
		t.Fatalf("create product: %d", st)
	}
	if st := p.call("POST", "/api/v1/operator/inbound", operatorToken, map[string]any{"channel_id": tm.channelID,
		"messages": []any{map[string]any{"external_id": uuid.NewString(), "from": "+15550001", "text": "is the blue mug in stock?"}}}, nil); st != 201 {
		t.Fatalf("inject: %d", st)
	}

	var convID, imageURL string
	sentProduct := false
	for imageURL == "" {
		f := sock.next(ctx)
		if f.Type != "event" {
			continue
		}
		var data struct {
			ID      string `json:"id"`
			Kind    string `json:"kind"`
			Image   *struct{ URL string }
			Product *struct {
				Title string
				Image *struct{ URL string }
			}
		}
		json.Unmarshal(f.Event.Data, &data)
		switch {
		case f.Event.Type == "product.created":
			if data.Image == nil || data.Image.URL == "" {
				t.Fatalf("product.created without a signed image URL: %s", f.raw)
			}
		case f.Event.Type == "conversation.created":
			convID = data.ID
		case f.Event.Type == "message.created" && data.Kind == "text" && !sentProduct:
			sentProduct = true
			var m struct{ Message struct{ Kind string } }
			if st := p.call("POST", "/api/v1/conversations/"+convID+"/messages", tm.token, map[string]any{"client_id": uuid.NewString(), "product_id": created.Product.ID}, &m); st != 201 || m.Message.Kind != "product" {
				t.Fatalf("send product: %d %+v", st, m)
			}
		case f.Event.Type == "message.created" && data.Kind == "product":
			if data.Product == nil || data.Product.Title != "Blue mug" || data.Product.Image == nil {
				t.Fatalf("product message: %s", f.raw)
			}
			imageURL = data.Product.Image.URL
		}
	}
	resp, err := http.Get(p.url + imageURL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, pic.Bytes()) || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("signed image URL: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(got))
	}
}
