package ws

import (
	"net"
	"sync"
	"time"
)

// corkWriter sits between the WebSocket layer's write buffer and the TCP
// connection. The WebSocket layer flushes after every message, which costs
// a system call per frame; a socket that is behind gets its queued frames
// in one batch, and corking for that batch sends them in one write. The
// buffer exists only while corked, so idle sockets pay nothing for it.
type corkWriter struct {
	nc   net.Conn
	pool *sync.Pool // batch buffers, shared by the server's sockets

	mu     sync.Mutex // Write runs under the WebSocket layer's lock, cork/uncork under the hub worker
	corked bool
	buf    *[]byte
}

// newCorkPool makes the pool of batch buffers a server's sockets share.
func newCorkPool() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}
}

func (w *corkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.corked {
		*w.buf = append(*w.buf, p...)
		return len(p), nil
	}
	return w.nc.Write(p)
}

// cork holds writes back until uncork.
func (w *corkWriter) cork() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.corked {
		w.corked = true
		w.buf = w.pool.Get().(*[]byte)
	}
}

// uncork sends what was held back in one write, bounded by timeout.
func (w *corkWriter) uncork(timeout time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.corked {
		return nil
	}
	w.corked = false
	buf := w.buf
	w.buf = nil
	defer func() {
		*buf = (*buf)[:0]
		if cap(*buf) <= 1<<20 {
			w.pool.Put(buf)
		}
	}()
	if len(*buf) == 0 {
		return nil
	}
	_ = w.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := w.nc.Write(*buf)
	_ = w.nc.SetWriteDeadline(time.Time{})
	return err
}
