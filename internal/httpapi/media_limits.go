package httpapi

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"
)

// uploadSlack is what a multipart envelope adds around a file: a file of
// exactly MaxUpload bytes must fit, and one a little larger must still be
// read whole so the answer is a clean 413 from the handler.
const uploadSlack = 64 << 10

// uploadReadTimeout is how long a client may take to send an upload: a
// 16 MiB video over a poor mobile link takes minutes, not seconds.
const uploadReadTimeout = 5 * time.Minute

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
func (s *Server) requestConfig(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	path := h.RequestURI()
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch method := string(h.Method()); {
	case isUpload(method, string(path)):
		return fasthttp.RequestConfig{MaxRequestBodySize: s.maxUpload + uploadSlack, ReadTimeout: uploadReadTimeout}
	case (method == fasthttp.MethodGet || method == fasthttp.MethodHead) && bytes.HasPrefix(path, []byte("/api/v1/media/")):
		// Sending a file to a slow phone takes longer than a JSON answer.
		return fasthttp.RequestConfig{WriteTimeout: uploadReadTimeout}
	case method == fasthttp.MethodGet && string(path) == backupPath:
		return fasthttp.RequestConfig{WriteTimeout: backupWriteTimeout} // operator_backup.go
	}
	return fasthttp.RequestConfig{}
}
