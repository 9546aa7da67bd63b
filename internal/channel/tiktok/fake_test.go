package tiktok_test

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeTikTok is a loopback Business Messaging API: send, media upload and
// media download, checking the Access-Token header and the body shapes
// the real API wants, and answering in its envelope.
type fakeTikTok struct {
	t        *testing.T
	srv      *httptest.Server
	business string
	token    string

	mu       sync.Mutex
	sent     []map[string]any
	uploads  [][]byte
	calls    int
	images   map[string][]byte // media id -> bytes offered for download
	failNext []string          // raw answers (HTTP 200) for the next send calls
	nextID   int
}

func newFakeTikTok(t *testing.T) *fakeTikTok {
	f := &fakeTikTok{t: t, business: "7374937459228475397", token: "act.tt-test-token", images: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTikTok) config() map[string]string {
	return map[string]string{"business_id": f.business, "access_token": f.token, "client_secret": "tt-secret", "api_base_url": f.srv.URL}
}

func (f *fakeTikTok) counts() (calls, sent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, len(f.sent)
}

func (f *fakeTikTok) fail(w http.ResponseWriter, msg string) {
	f.t.Errorf("fake tiktok: %s", msg)
	fmt.Fprintf(w, `{"code":40002,"message":%q,"request_id":"r"}`, msg)
}

func (f *fakeTikTok) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if strings.HasPrefix(r.URL.Path, "/cdn/") {
		f.mu.Lock()
		b, ok := f.images[strings.TrimPrefix(r.URL.Path, "/cdn/")]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(b)
		return
	}
	if r.Header.Get("Access-Token") != f.token {
		io.WriteString(w, `{"code":40105,"message":"Access token is incorrect or has been revoked.","request_id":"r"}`)
		return
	}
	if r.Method != http.MethodPost {
		f.fail(w, "unexpected "+r.Method)
		return
	}
	switch r.URL.Path {
	case "/open_api/v1.3/business/message/send/":
		f.send(w, r)
	case "/open_api/v1.3/business/message/media/upload/":
		f.upload(w, r)
	case "/open_api/v1.3/business/message/media/download/":
		var body map[string]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["business_id"] != f.business ||
			body["conversation_id"] == "" || body["message_id"] == "" || body["media_type"] != "IMAGE" {
			f.fail(w, fmt.Sprintf("bad download request %v", body))
			return
		}
		fmt.Fprintf(w, `{"code":0,"message":"OK","request_id":"r","data":{"download_url":"%s/cdn/%s"}}`, f.srv.URL, body["media_id"])
	default:
		f.fail(w, "unexpected path "+r.URL.Path)
	}
}

func (f *fakeTikTok) send(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.fail(w, "send body is not JSON")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.failNext) > 0 {
		a := f.failNext[0]
		f.failNext = f.failNext[1:]
		io.WriteString(w, a)
		return
	}
	if body["business_id"] != f.business || body["recipient_type"] != "CONVERSATION" || body["recipient"] == "" {
		f.fail(w, fmt.Sprintf("send without business_id, recipient_type or recipient: %v", body))
		return
	}
	switch body["message_type"] {
	case "TEXT":
		text, _ := body["text"].(map[string]any)
		if s, _ := text["body"].(string); s == "" {
			f.fail(w, "TEXT without text.body")
			return
		}
	case "IMAGE":
		img, _ := body["image"].(map[string]any)
		if s, _ := img["media_id"].(string); s == "" {
			f.fail(w, "IMAGE without image.media_id")
			return
		}
	default:
		f.fail(w, fmt.Sprintf("unexpected message_type %v", body["message_type"]))
		return
	}
	f.sent = append(f.sent, body)
	f.nextID++
	fmt.Fprintf(w, `{"code":0,"message":"OK","request_id":"r","data":{"message":{"message_id":"tt-out-%d"}}}`, f.nextID)
}

func (f *fakeTikTok) upload(w http.ResponseWriter, r *http.Request) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		f.fail(w, "upload is not multipart")
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	fields := map[string]string{}
	var file []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.fail(w, "bad multipart")
			return
		}
		b, _ := io.ReadAll(p)
		if p.FormName() == "file" {
			file = b
		} else {
			fields[p.FormName()] = string(b)
		}
	}
	if fields["business_id"] != f.business || fields["media_type"] != "IMAGE" || len(file) == 0 {
		f.fail(w, fmt.Sprintf("upload without business_id, media_type or file: %v", fields))
		return
	}
	f.mu.Lock()
	f.uploads = append(f.uploads, file)
	n := len(f.uploads)
	f.mu.Unlock()
	fmt.Fprintf(w, `{"code":0,"message":"OK","request_id":"r","data":{"media_id":"up-%d"}}`, n)
}
