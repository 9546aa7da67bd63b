package httpapi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// declareUpload opens a connection, sends the headers of an upload that
// declares a body of size bytes, sends none of it, and returns the
// answer's status, whether the server then closed the connection, and how
// long the answer took. A server that waited for the body would answer
// nothing before the client's deadline, which fails the test.
func declareUpload(t *testing.T, addr, path, auth string, size int) (status int, closed bool, took time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n", path, size)
	if auth != "" {
		head += "Authorization: " + auth + "\r\n"
	}
	start := time.Now()
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s with %q: no answer while the body was still owed: %v", path, auth, err)
	}
	took = time.Since(start)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	return resp.StatusCode, err == io.EOF, took
}

// TestUploadBudgetNeedsALiveSession: fasthttp sizes a body's buffer from
// its declared length before reading it, and authentication runs after
// the body is in, so the upload limit is granted at the headers only to a
// live session. Anyone else declaring a 16 MiB upload is answered 413 at
// once, with the body never read, and the connection closed; a signed-in
// agent still uploads several MiB.
func TestUploadBudgetNeedsALiveSession(t *testing.T) {
	const maxUpload = 16 << 20
	h := newHarness(t, withMedia(t, maxUpload, &mediaClock{}))
	tm := h.newTeam("Acme")
	addr := strings.TrimPrefix(h.url, "http://")

	ended := h.signIn(tm.agentKey)
	h.want(h.req("DELETE", "/api/v1/session", ended, nil), 204)
	before := h.head(tm.adminToken)

	for name, auth := range map[string]string{
		"no token":           "",
		"not a bearer token": "Basic dXNlcjpwYXNz",
		"a made-up token":    "Bearer obs_" + strings.Repeat("a", 40),
		"a signed-out token": "Bearer " + ended,
	} {
		for _, path := range []string{"/api/v1/media", "/api/v1/catalog/import"} {
			status, closed, took := declareUpload(t, addr, path, auth, maxUpload)
			if status != http.StatusRequestEntityTooLarge || !closed {
				t.Errorf("%s, %s declaring 16 MiB: status %d, closed %v; want 413 and closed", path, name, status, closed)
			}
			// The answer comes from the headers alone; 2 s is far above a
			// lookup and far below the 30 s the body could take.
			if took > 2*time.Second {
				t.Errorf("%s, %s: answered after %v, want at once", path, name, took)
			}
		}
	}
	// An agent may upload media but not import a catalog: the import's
	// budget is an admin's.
	if status, _, _ := declareUpload(t, addr, "/api/v1/catalog/import", "Bearer "+tm.agentToken, maxUpload); status != http.StatusRequestEntityTooLarge {
		t.Errorf("catalog import by an agent declaring 16 MiB: status %d, want 413 before the body", status)
	}

	h.unchanged(tm.adminToken, before)

	// A live session keeps the whole budget: a few MiB, far over the
	// harness's 64 KiB JSON limit, is stored.
	file := pdfBytes(3 << 20)
	if m := h.uploadOK(tm.agentToken, "big.pdf", file); m.Size != int64(len(file)) {
		t.Errorf("stored %d bytes, want %d", m.Size, len(file))
	}
}
