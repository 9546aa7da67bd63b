package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// metric reads one series from the server's /metrics; -1 if absent.
func (p *proc) metric(series string) float64 {
	p.t.Helper()
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// waitMetric waits until series reads want: a socket's close counts once
// its server side has finished, which may be just after the client saw it.
func (p *proc) waitMetric(series string, want float64) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := p.metric(series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s = %v, want %v", series, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func closeCode(ctx context.Context, c *websocket.Conn) websocket.StatusCode {
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// TestLimitHitsOnMetrics trips the socket limits and the body limit of a
// real server and reads each counter on /metrics, next to the process
// gauges an operator watches for leaks.
func TestLimitHitsOnMetrics(t *testing.T) {
	t.Setenv("ONEBOX_MAX_SOCKETS_PER_AGENT", "1")
	t.Setenv("ONEBOX_MAX_BODY", "4096")
	p := start(t, t.TempDir())
	for _, g := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_heap_live_bytes", "process_resident_memory_bytes"} {
		if v := p.metric(g); v <= 0 {
			t.Errorf("%s = %v, want a positive value", g, v)
		}
	}
	for _, s := range []string{"onebox_websocket_agent_limit_closes_total", "onebox_websocket_flood_closes_total",
		"onebox_websocket_too_big_closes_total", `onebox_limit_hits_total{limit="body_size"}`} {
		if v := p.metric(s); v != 0 {
			t.Fatalf("%s = %v before any hit, want 0", s, v)
		}
	}
	tm := p.newTeam("Acme")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// 1013: the agent's second socket.
	first := p.dial(ctx, tm.token, 0)
	if f := first.next(ctx); f.Type != "welcome" {
		t.Fatalf("first frame %s, want welcome", f.raw)
	}
	second := p.dial(ctx, tm.token, 0)
	if code := closeCode(ctx, second.conn); code != websocket.StatusTryAgainLater {
		t.Fatalf("second socket of one agent: close %d, want 1013", code)
	}
	p.waitMetric("onebox_websocket_agent_limit_closes_total", 1)

	// 1008: the first socket floods.
	for range 500 {
		if first.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"typing","conversation_id":"x"}`)) != nil {
			break
		}
	}
	if code := closeCode(ctx, first.conn); code != websocket.StatusPolicyViolation {
		t.Fatalf("flood: close %d, want 1008", code)
	}
	p.waitMetric("onebox_websocket_flood_closes_total", 1)

	// 1009: a frame over the 64 KiB limit, on a new socket (the agent's
	// place is free again once the flood's socket is gone).
	var third *wsClient
	deadline := time.Now().Add(10 * time.Second)
	for {
		third = p.dial(ctx, tm.token, 0)
		_, b, err := third.conn.Read(ctx)
		if err == nil && bytes.Contains(b, []byte(`"welcome"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no welcome for a socket after the flood's closed: %s %v", b, err)
		}
	}
	_ = third.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"typing","conversation_id":"`+strings.Repeat("x", 100<<10)+`"}`))
	if code := closeCode(ctx, third.conn); code != websocket.StatusMessageTooBig {
		t.Fatalf("big frame: close %d, want 1009", code)
	}
	p.waitMetric("onebox_websocket_too_big_closes_total", 1)

	// 413: a body over ONEBOX_MAX_BODY.
	if st := p.call("POST", "/api/v1/agents", tm.token, map[string]any{"name": strings.Repeat("x", 8<<10)}, nil); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d, want 413", st)
	}
	p.waitMetric(`onebox_limit_hits_total{limit="body_size"}`, 1)
	// Each counted only its own.
	p.waitMetric("onebox_websocket_agent_limit_closes_total", 1)
	p.waitMetric("onebox_websocket_flood_closes_total", 1)
}

// TestTrustedProxiesFromEnvironment: with ONEBOX_TRUSTED_PROXIES naming the
// loopback address, the sign-in limit is per forwarded client.
func TestTrustedProxiesFromEnvironment(t *testing.T) {
	t.Setenv("ONEBOX_RATE_SIGNIN", "1/h:1")
	t.Setenv("ONEBOX_TRUSTED_PROXIES", "127.0.0.1")
	p := start(t, t.TempDir())
	guesses := 0
	signIn := func(client string) int {
		guesses++ // a new key prefix each time: only the address limit applies
		req, _ := http.NewRequest("POST", p.url+"/api/v1/session", strings.NewReader(`{"access_key":"obx_`+strconv.Itoa(guesses)+`_wrongwrongwrong"}`))
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		client string
		want   int
	}{{"203.0.113.1", 401}, {"203.0.113.2", 401}, {"203.0.113.1", 429}} {
		if got := signIn(c.client); got != c.want {
			t.Fatalf("sign-in from %s through the proxy: %d, want %d", c.client, got, c.want)
		}
	}
}

func TestTrustedProxiesMalformed(t *testing.T) {
	t.Setenv("ONEBOX_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal")
	_, err := parseServe(nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ONEBOX_TRUSTED_PROXIES") || !strings.Contains(err.Error(), "proxy.internal") {
		t.Fatalf("parseServe = %v, want an error naming the variable and the entry", err)
	}
}
