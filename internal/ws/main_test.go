package ws_test

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/ws/wstest"
)

// TestMain fails the run if goroutines outlive the tests (each test also
// checks its own, see checkLeaks).
func TestMain(m *testing.M) {
	if os.Getenv(clientsEnv) != "" {
		os.Exit(runClients()) // child process of TestMemoryPerIdleSocket
	}
	flag.Parse()
	warmUp()
	base := runtime.NumGoroutine()
	code := m.Run()
	// A fuzzing run keeps goroutines of the fuzz engine's own (its signal
	// handling) past m.Run, which is not a leak of ours.
	if code == 0 && !fuzzing() {
		if err := waitGoroutines(base, 10*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func fuzzing() bool {
	f := flag.Lookup("test.fuzz")
	return f != nil && f.Value.String() != ""
}

// warmUp serves once so fasthttp's process-wide date updater goroutine
// exists before any baseline is taken.
func warmUp() {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Server().MaxIdleWorkerDuration = 50 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = app.Listener(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err == nil {
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		buf := make([]byte, 512)
		_, _ = c.Read(buf)
		_ = c.Close()
	}
	_ = app.Shutdown()
	<-done
}

// checkLeaks fails t if goroutines outlive it; call it first in a test.
func checkLeaks(t *testing.T) { wstest.CheckGoroutines(t) }

func waitGoroutines(base int, d time.Duration) error { return wstest.WaitGoroutines(base, d) }
