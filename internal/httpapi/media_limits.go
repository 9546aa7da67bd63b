package httpapi

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onebox/onebox/internal/inbox"
)

// uploadSlack is what a multipart envelope adds around a file: a file of
// exactly MaxUpload bytes must fit, and one a little larger must still be
// read whole so the answer is a clean 413 from the handler.
const uploadSlack = 64 << 10

// uploadReadTimeout is how long a client may take to send an upload: a
// 16 MiB video over a poor mobile link takes minutes, not seconds.
const uploadReadTimeout = 5 * time.Minute

// uploaderCheckTimeout bounds the session lookup made before an upload's
// body is read. It runs on the connection's goroutine, so a store that
// hangs must not hold the connection longer than a JSON request may take.
const uploaderCheckTimeout = 5 * time.Second

// isUpload reports whether a request is one of the few that carry files
// rather than JSON: media uploads and catalog imports.
func isUpload(method, path string) bool {
	if method != fasthttp.MethodPost {
		return false
	}
	if len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	return path == "/api/v1/media" || path == "/api/v1/catalog/import"
}

// requestConfig is fasthttp's HeaderReceived hook: it runs once the
// headers are in and before the body is read, so only upload routes get
// the upload limit and every other route keeps MaxBody, instead of one
// large limit for all.
//
// fasthttp allocates the whole declared Content-Length before it reads a
// body, and authentication runs only after the body is in. So the upload
// budget and its long read timeout go only to requests that already show
// a live session here; anyone else keeps the ordinary limit and timeout,
// and a client declaring a large body without one is answered 413 before
// anything is allocated for it.
func (s *Server) requestConfig(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	path := h.RequestURI()
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch method := string(h.Method()); {
	case isUpload(method, string(path)):
		if !s.mayUpload(h, string(path)) {
			return fasthttp.RequestConfig{}
		}
		return fasthttp.RequestConfig{MaxRequestBodySize: s.maxUpload + uploadSlack, ReadTimeout: s.uploadTimeout}
	case (method == fasthttp.MethodGet || method == fasthttp.MethodHead) && bytes.HasPrefix(path, []byte("/api/v1/media/")):
		// Sending a file to a slow phone takes longer than a JSON answer.
		return fasthttp.RequestConfig{WriteTimeout: uploadReadTimeout}
	case method == fasthttp.MethodGet && string(path) == backupPath:
		return fasthttp.RequestConfig{WriteTimeout: backupWriteTimeout} // operator_backup.go
	}
	return fasthttp.RequestConfig{}
}

// mayUpload reports whether an upload's headers carry the session of
// someone the route would accept: any agent for media, an admin for a
// catalog import. It is the same read-only lookup authenticate makes (no
// write, so it costs one read transaction); authenticate still runs on
// the full request, so a session ended while the body arrives is refused
// then. A failed lookup counts as no session: the client gets the
// ordinary limit rather than the store's trouble deciding how much memory
// an unknown caller may hold.
func (s *Server) mayUpload(h *fasthttp.RequestHeader, path string) bool {
	tok, ok := bearerToken(string(h.Peek(fasthttp.HeaderAuthorization)))
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), uploaderCheckTimeout)
	defer cancel()
	p, err := s.svc.Authenticate(ctx, tok)
	if err != nil {
		if !errors.Is(err, inbox.ErrUnauthorized) {
			s.log.Warn("check an upload's session", "error", err)
		}
		return false
	}
	if strings.HasSuffix(strings.TrimSuffix(path, "/"), "/catalog/import") {
		return p.IsAdmin()
	}
	return true
}
