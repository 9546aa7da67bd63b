package ws

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// Buffer sizes of a hijacked connection. A socket mostly idles, and an idle
// socket's buffers are most of what it costs, so they are small: client frames
// are tiny (hello, typing) and server frames larger than the write buffer go
// to the socket without being copied.
const (
	readBufferSize  = 256
	writeBufferSize = 1024
)

// hijackWriter is the http.ResponseWriter websocket.Accept needs, over a
// connection the HTTP server has already handed over (fasthttp hijack). It
// is used for exactly one response: either the 101 upgrade, written when
// Accept calls Hijack, or an error response when Accept refuses.
type hijackWriter struct {
	nc     net.Conn
	cork   *corkWriter // the upgraded socket's writes go through it
	header http.Header
	status int
	sent   bool // status line and headers written
}

func newHijackWriter(nc net.Conn, pool *sync.Pool) *hijackWriter {
	return &hijackWriter{nc: nc, header: make(http.Header), cork: &corkWriter{nc: nc, pool: pool}}
}

func (w *hijackWriter) Header() http.Header { return w.header }

func (w *hijackWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

// Write sends an error body. The connection is closed after it, which is
// what delimits the body.
func (w *hijackWriter) Write(p []byte) (int, error) {
	if !w.sent {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		w.header.Set("Connection", "close")
		bw := bufio.NewWriterSize(w.nc, 512)
		if err := w.writeHead(bw); err != nil {
			return 0, err
		}
		if err := bw.Flush(); err != nil {
			return 0, fmt.Errorf("write response head: %w", err)
		}
	}
	return w.nc.Write(p)
}

// Hijack writes the status line and headers committed by WriteHeader(101),
// then hands the connection to the WebSocket layer with small buffers.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.sent {
		return nil, nil, fmt.Errorf("hijack after the response was written")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	bw := bufio.NewWriterSize(w.cork, writeBufferSize)
	if err := w.writeHead(bw); err != nil {
		return nil, nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, nil, fmt.Errorf("write upgrade response: %w", err)
	}
	br := bufio.NewReaderSize(w.nc, readBufferSize)
	return w.nc, bufio.NewReadWriter(br, bw), nil
}

func (w *hijackWriter) writeHead(bw *bufio.Writer) error {
	w.sent = true
	if _, err := fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", w.status, http.StatusText(w.status)); err != nil {
		return fmt.Errorf("write status line: %w", err)
	}
	if err := w.header.Write(bw); err != nil {
		return fmt.Errorf("write headers: %w", err)
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return fmt.Errorf("write headers: %w", err)
	}
	return nil
}
