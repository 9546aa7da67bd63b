package whatsapp_test

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

// fakeGraph is a loopback Cloud API: the messages and media endpoints of
// one phone number, and media downloads. It checks what the real one
// checks (path, bearer token, body shape) and answers in its format.
type fakeGraph struct {
	t       *testing.T
	srv     *httptest.Server
	version string
	phone   string
	token   string

	mu        sync.Mutex
	sent      []map[string]any // accepted message bodies, in order
	reads     []string         // wamids marked read
	uploads   []upload
	calls     int
	downloads int
	media     map[string]fakeMedia // media id -> attachment
	failNext  []answer             // answers to give to the next message calls
	nextID    int
	notify    chan struct{}
}

type upload struct {
	typ, filename, contentType string
	data                       []byte
}

type fakeMedia struct {
	mime string
	data []byte
	size string // file_size as the API reports it; "" = len(data)
	// chunked sends the bytes without a Content-Length.
	chunked bool
}

type answer struct {
	status int
	header map[string]string
	body   string
}

func newFakeGraph(t *testing.T) *fakeGraph {
	f := &fakeGraph{t: t, version: "v21.0", phone: "106540352242922", token: "EAAG-test-token",
		media: map[string]fakeMedia{}, notify: make(chan struct{}, 1000)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// config is a channel config pointing at the fake.
func (f *fakeGraph) config() map[string]string {
	return map[string]string{
		"phone_number_id": f.phone, "access_token": f.token, "app_secret": "app-secret-1",
		"verify_token": "verify-me", "api_base_url": f.srv.URL, "api_version": f.version,
	}
}

func graphError(status int, code int, msg string) answer {
	return answer{status: status, body: fmt.Sprintf(`{"error":{"message":%q,"type":"OAuthException","code":%d,"error_data":{"messaging_product":"whatsapp","details":"details of %d"},"fbtrace_id":"AbCdEf"}}`, msg, code, code)}
}

// failWith makes the next message calls answer these, in order.
func (f *fakeGraph) failWith(a ...answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = append(f.failNext, a...)
}

func (f *fakeGraph) counts() (calls, sent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, len(f.sent)
}

func (f *fakeGraph) lastSent() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sent) == 0 {
		return nil
	}
	return f.sent[len(f.sent)-1]
}

func (f *fakeGraph) fail(w http.ResponseWriter, status int, msg string) {
	f.t.Errorf("fake graph: %s", msg)
	http.Error(w, `{"error":{"message":"`+msg+`","code":100}}`, status)
}

func (f *fakeGraph) serve(w http.ResponseWriter, r *http.Request) {
	defer func() {
		select {
		case f.notify <- struct{}{}:
		default:
		}
	}()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190}}`)
		return
	}
	prefix := "/" + f.version + "/"
	switch {
	case strings.HasPrefix(r.URL.Path, "/download/"):
		f.download(w, r)
	case r.Method == http.MethodPost && r.URL.Path == prefix+f.phone+"/messages":
		f.messages(w, r)
	case r.Method == http.MethodPost && r.URL.Path == prefix+f.phone+"/media":
		f.upload(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, prefix):
		f.mediaInfo(w, strings.TrimPrefix(r.URL.Path, prefix))
	default:
		f.fail(w, http.StatusNotFound, "unexpected "+r.Method+" "+r.URL.Path)
	}
}

func (f *fakeGraph) messages(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.fail(w, http.StatusBadRequest, "messages call with Content-Type "+ct)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.fail(w, http.StatusBadRequest, "messages body is not JSON")
		return
	}
	if body["messaging_product"] != "whatsapp" {
		f.fail(w, http.StatusBadRequest, "messaging_product missing")
		return
	}
	f.mu.Lock()
	f.calls++
	if len(f.failNext) > 0 {
		a := f.failNext[0]
		f.failNext = f.failNext[1:]
		f.mu.Unlock()
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
		return
	}
	defer f.mu.Unlock()
	if body["status"] == "read" {
		id, _ := body["message_id"].(string)
		if id == "" {
			f.fail(w, http.StatusBadRequest, "read receipt without message_id")
			return
		}
		f.reads = append(f.reads, id)
		io.WriteString(w, `{"success":true}`)
		return
	}
	to, _ := body["to"].(string)
	typ, _ := body["type"].(string)
	obj, _ := body[typ].(map[string]any)
	if to == "" || obj == nil {
		f.fail(w, http.StatusBadRequest, fmt.Sprintf("message without to or %q object: %v", typ, body))
		return
	}
	switch typ {
	case "text":
		if s, _ := obj["body"].(string); s == "" {
			f.fail(w, http.StatusBadRequest, "text without body")
			return
		}
	case "image", "video", "audio", "document", "sticker":
		if s, _ := obj["id"].(string); s == "" {
			f.fail(w, http.StatusBadRequest, typ+" without an uploaded media id")
			return
		}
	default:
		f.fail(w, http.StatusBadRequest, "unexpected type "+typ)
		return
	}
	f.sent = append(f.sent, body)
	f.nextID++
	fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":%q,"wa_id":%q}],"messages":[{"id":"wamid.OUT%d"}]}`, to, to, f.nextID)
}

func (f *fakeGraph) upload(w http.ResponseWriter, r *http.Request) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		f.fail(w, http.StatusBadRequest, "upload is not multipart")
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var up upload
	product := ""
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.fail(w, http.StatusBadRequest, "bad multipart")
			return
		}
		b, _ := io.ReadAll(p)
		switch p.FormName() {
		case "messaging_product":
			product = string(b)
		case "type":
			up.typ = string(b)
		case "file":
			up.filename, up.contentType, up.data = p.FileName(), p.Header.Get("Content-Type"), b
		}
	}
	if product != "whatsapp" || up.typ == "" || len(up.data) == 0 {
		f.fail(w, http.StatusBadRequest, "upload without messaging_product, type or file")
		return
	}
	f.mu.Lock()
	f.uploads = append(f.uploads, up)
	n := len(f.uploads)
	f.mu.Unlock()
	fmt.Fprintf(w, `{"id":"upl-%d"}`, n)
}

func (f *fakeGraph) mediaInfo(w http.ResponseWriter, id string) {
	f.mu.Lock()
	m, ok := f.media[id]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"message":"Unsupported get request.","type":"GraphMethodException","code":100,"error_subcode":33}}`)
		return
	}
	size := m.size
	if size == "" {
		size = fmt.Sprint(len(m.data))
	}
	fmt.Fprintf(w, `{"messaging_product":"whatsapp","url":"%s/download/%s?ext=1&hash=abc","mime_type":%q,"sha256":"x","file_size":%q,"id":%q}`,
		f.srv.URL, id, m.mime, size, id)
}

func (f *fakeGraph) download(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/download/")
	f.mu.Lock()
	f.downloads++
	m, ok := f.media[id]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", m.mime)
	if m.chunked {
		w.Write(m.data[:1])
		w.(http.Flusher).Flush()
		w.Write(m.data[1:])
		return
	}
	w.Write(m.data)
}
