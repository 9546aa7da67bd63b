package ws_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/ws/wstest"
)

// clientsEnv carries the socket URL to the child process that holds the
// client ends, so their memory is not counted with the server's.
const clientsEnv = "ONEBOX_WS_MEMTEST_CLIENTS"

// TestMemoryPerIdleSocket measures the server's memory per idle,
// authenticated socket. It runs only on request:
//
//	ONEBOX_WS_MEMTEST=2000 go test -run TestMemoryPerIdleSocket -v ./internal/ws
//
// (ONEBOX_WS_MEMTEST_BLOCKING=1 measures without EnableWebSocketHandoff.)
func TestMemoryPerIdleSocket(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ONEBOX_WS_MEMTEST"))
	if n <= 0 {
		t.Skip("set ONEBOX_WS_MEMTEST=<sockets> to measure")
	}
	e := wstest.NewEnv(t, wstest.Options{Blocking: os.Getenv("ONEBOX_WS_MEMTEST_BLOCKING") == "1"})
	tokens := make([]string, n)
	for i := range tokens {
		// 10 tenants of 20 agents, several devices each: realistic
		// presence fan-out without one giant tenant.
		tokens[i] = e.Backend.AddSession(fmt.Sprintf("t%d", i%10), fmt.Sprintf("a%d", i%200), fmt.Sprintf("k%d", i))
	}
	tokenFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte(strings.Join(tokens, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}

	before := serverMemory()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientsEnv+"="+e.URL+" "+tokenFile)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close() // the child exits on EOF
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("client process: %q, %v", line, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.Server.Stats().Connections != int64(n) || e.Hub.Stats().Subscribers != int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, hub %+v, want %d sockets", e.Server.Stats(), e.Hub.Stats(), n)
		}
		time.Sleep(20 * time.Millisecond) // polling counters
	}
	after := serverMemory()
	per := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(n) / 1024 }
	t.Logf("%d idle authenticated sockets, per socket (KiB): heap objects %.2f, goroutine stacks %.2f, "+
		"runtime in use %.2f, RSS %.2f; goroutines %d -> %d",
		n, per(after.heap, before.heap), per(after.stacks, before.stacks),
		per(after.inUse, before.inUse), per(after.rss, before.rss), before.goroutines, after.goroutines)
}

type memSample struct {
	heap, stacks, inUse, rss uint64
	goroutines               int
}

func serverMemory() memSample {
	runtime.GC()
	runtime.GC() // a second cycle frees what finalizers released
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/os-stacks:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(samples)
	v := func(i int) uint64 { return samples[i].Value.Uint64() }
	return memSample{
		heap:       v(0),
		stacks:     v(1) + v(2),
		inUse:      v(3) - v(4) - v(5),
		rss:        rss(),
		goroutines: runtime.NumGoroutine(),
	}
}

func rss() uint64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// runClients is the child process: open one socket per token, say hello,
// wait for welcome, report ready, and hold them until stdin closes.
func runClients() int {
	url, tokenFile, _ := strings.Cut(os.Getenv(clientsEnv), " ")
	data, err := os.ReadFile(tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tokens := strings.Split(string(data), "\n")
	conns := make([]*websocket.Conn, len(tokens))
	client := &http.Client{Transport: &http.Transport{}}
	var wg sync.WaitGroup
	errs := make(chan error, len(tokens))
	sem := make(chan struct{}, 16)
	for i, tok := range tokens {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"hello","token":"`+tok+`","since":0}`)); err != nil {
				errs <- err
				return
			}
			if _, msg, err := c.Read(ctx); err != nil || !strings.Contains(string(msg), `"welcome"`) {
				errs <- fmt.Errorf("welcome: %q %v", msg, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.CloseNow()
	}
	return 0
}
