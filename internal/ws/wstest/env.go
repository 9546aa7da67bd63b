package wstest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/httpapi"
	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/ws"
)

// Options shape an Env. Backend, Hub and Fill in the nested options are
// filled in by NewEnv.
type Options struct {
	Hub hub.Options
	WS  ws.Options
	// Blocking leaves fasthttp's KeepHijackedConns off, so ServeConn runs in
	// fasthttp's hijack goroutine (the mode without EnableWebSocketHandoff).
	Blocking bool
	// Serve wraps the ws server's ServeConn, e.g. to look at the request.
	Serve func(next func(net.Conn, *http.Request)) func(net.Conn, *http.Request)
}

// Env is a running live stream: fake backend, hub, ws.Server, and a Fiber
// app serving GET /api/v1/ws on 127.0.0.1.
type Env struct {
	Backend *Backend
	Hub     *hub.Hub
	Server  *ws.Server
	App     *fiber.App
	URL     string // ws://127.0.0.1:port/api/v1/ws
	Origin  string // http://127.0.0.1:port

	transport *http.Transport
	closed    bool
}

// NewEnv starts an Env; t.Cleanup shuts it down.
func NewEnv(t testing.TB, o Options) *Env {
	t.Helper()
	e := &Env{Backend: NewBackend()}
	o.Hub.Fill = e.Backend.Fill
	e.Hub = hub.New(o.Hub)
	e.Backend.SetPublisher(e.Hub)
	o.WS.Backend = e.Backend
	o.WS.Hub = e.Hub
	e.Server = ws.NewServer(o.WS)

	serve := e.Server.ServeConn
	if o.Serve != nil {
		serve = o.Serve(serve)
	}
	e.App = fiber.New(fiber.Config{DisableStartupMessage: true})
	// fasthttp's worker-pool cleaner sleeps this long between checks for
	// Shutdown; the default 10s would make goroutine-leak checks slow.
	e.App.Server().MaxIdleWorkerDuration = 50 * time.Millisecond
	if !o.Blocking {
		httpapi.EnableWebSocketHandoff(e.App)
	}
	e.App.Get("/api/v1/ws", httpapi.WebSocketHandler(serve))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = e.App.Listener(ln)
	}()
	e.Origin = "http://" + ln.Addr().String()
	e.URL = "ws://" + ln.Addr().String() + "/api/v1/ws"
	e.transport = &http.Transport{}
	t.Cleanup(func() {
		e.Shutdown(t)
		<-served
	})
	return e
}

// Shutdown stops everything in the order the server does: sockets, then
// HTTP, then the hub. Safe to call twice.
func (e *Env) Shutdown(t testing.TB) {
	t.Helper()
	if e.closed {
		return
	}
	e.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Server.Shutdown(ctx); err != nil {
		t.Errorf("ws shutdown: %v", err)
	}
	if err := e.App.ShutdownWithContext(ctx); err != nil {
		t.Errorf("http shutdown: %v", err)
	}
	e.Hub.Close()
	e.transport.CloseIdleConnections()
}

// HTTPClient is a client with its own transport, closed with the Env, so
// no keep-alive goroutine outlives a test.
func (e *Env) HTTPClient() *http.Client { return &http.Client{Transport: e.transport} }

// SmallReceiveBuffer returns an HTTP client whose connections have a tiny
// kernel receive buffer, so a client that stops reading backs up the
// server quickly.
func (e *Env) SmallReceiveBuffer() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	tr := &http.Transport{DialContext: d.DialContext}
	return &http.Client{Transport: tr}
}

// HTTPURL is the socket's URL with http:// instead of ws://.
func (e *Env) HTTPURL() string { return "http" + strings.TrimPrefix(e.URL, "ws") }
