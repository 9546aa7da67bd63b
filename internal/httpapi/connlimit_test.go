package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPendingConnectionsAreBounded: connections that never finish their
// request hold the server only up to MaxConns; the next one is answered
// 503 and closed at once, and a slot that frees up serves again.
func TestPendingConnectionsAreBounded(t *testing.T) {
	const limit = 2
	h := newHarness(t, withConfig(func(c *Config) { c.MaxConns = limit }))
	addr := strings.TrimPrefix(h.url, "http://")

	// Each of these sends half a request and waits: a slow-loris client.
	var held []net.Conn
	for range limit {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}

	// The server accepts in order, so the next connection finds both
	// slots taken.
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(extra), nil)
	if err != nil {
		t.Fatalf("the connection over the limit got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over the limit: %d, want 503", resp.StatusCode)
	}
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the refused connection was left open (read: %v)", err)
	}

	// A held connection goes away; its slot serves a new client.
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code := healthzOnce(t, addr)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after a slot freed up: %d, want 200", code)
		}
	}
}

// healthzOnce asks /healthz on a fresh connection and returns the status.
func healthzOnce(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
