package httpapi

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// WebSocketHandler upgrades GET /api/v1/ws by handing the raw connection to
// serve (internal/ws's Server.ServeConn) with a net/http copy of the
// request. Fiber's adaptor offers no http.Hijacker, so the handler hijacks
// through fasthttp and the WebSocket layer writes the 101 itself.
//
// The Fiber ctx is never touched after Hijack: fasthttp reuses it. When the
// app's fasthttp server has KeepHijackedConns set (EnableWebSocketHandoff),
// serve runs in its own goroutine and fasthttp frees the request context and
// its read buffer at once; otherwise serve runs inside fasthttp's hijack
// goroutine, which must stay until the socket ends because fasthttp closes
// the connection when it returns, and those buffers stay with it.
func WebSocketHandler(serve func(nc net.Conn, r *http.Request)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		// Cheap checks first: most wrong callers are plain HTTP clients.
		if c.Method() != fiber.MethodGet ||
			!wsHeaderHasToken(c.Get(fiber.HeaderUpgrade), "websocket") ||
			!wsHeaderHasToken(c.Get(fiber.HeaderConnection), "upgrade") {
			c.Set(fiber.HeaderUpgrade, "websocket")
			return c.Status(fiber.StatusUpgradeRequired).JSON(fiber.Map{"error": fiber.Map{
				"code":    "invalid",
				"message": "this endpoint speaks WebSocket: send GET with Connection: Upgrade and Upgrade: websocket",
			}})
		}
		req, err := wsCopyRequest(c)
		if err != nil {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": fiber.Map{
				"code": "invalid", "message": "malformed request URI",
			}})
		}
		handoff := c.App().Server().KeepHijackedConns
		// 101 is what the socket layer will answer; setting it here only
		// makes the access log and metrics say so (no response is written).
		c.Status(fiber.StatusSwitchingProtocols)
		c.Context().HijackSetNoResponse(true)
		c.Context().Hijack(func(nc net.Conn) { wsServe(nc, req, serve, handoff) })
		return nil
	}
}

// EnableWebSocketHandoff makes fasthttp leave hijacked connections open when
// the hijack handler returns, so WebSocketHandler can let go of fasthttp's
// per-request state (about 8-9 KiB with this package's 8 KiB read buffer)
// for the socket's whole life. Call it before serving. It affects every
// Hijack in the app: a handler that hijacks must close the connection.
func EnableWebSocketHandoff(app *fiber.App) {
	app.Server().KeepHijackedConns = true
}

// wsServe runs serve on the hijacked connection. fasthttp hands over a
// wrapper whose Close does nothing (fasthttp closes the connection itself
// once the handler returns) and whose reads go through fasthttp's buffered
// reader. A WebSocket client sends nothing before the 101 (RFC 6455 4.1), so
// that reader holds no bytes and the raw connection can be read directly.
func wsServe(nc net.Conn, req *http.Request, serve func(net.Conn, *http.Request), handoff bool) {
	u, ok := nc.(interface{ UnsafeConn() net.Conn })
	if !ok {
		serve(nc, req)
		return
	}
	raw := u.UnsafeConn()
	if handoff {
		go serve(raw, req)
		return
	}
	// Blocking, on the raw connection all the same: the WebSocket layer
	// must be able to close TCP itself, because only that unblocks the
	// reader of a dead peer. fasthttp's own Close afterwards fails
	// harmlessly.
	serve(raw, req)
}

// wsCopyRequest copies what the WebSocket handshake needs out of fasthttp's
// request, whose buffers are reused once the handler returns.
func wsCopyRequest(c *fiber.Ctx) (*http.Request, error) {
	fr := &c.Context().Request
	uri := string(fr.RequestURI())
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, err
	}
	r := &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		RequestURI: uri,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, 12),
		Host:       string(fr.Host()),
		RemoteAddr: c.Context().RemoteAddr().String(),
	}
	if !fr.Header.IsHTTP11() {
		r.Proto, r.ProtoMinor = "HTTP/1.0", 0
	}
	fr.Header.VisitAll(func(k, v []byte) {
		r.Header.Add(string(k), string(v))
	})
	return r, nil
}

// wsHeaderHasToken reports whether a comma-separated header value holds
// token, case-insensitively ("keep-alive, Upgrade" holds "upgrade").
func wsHeaderHasToken(value, token string) bool {
	for _, t := range strings.Split(value, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}
