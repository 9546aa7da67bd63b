package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverProc is a OneBox server the tool started as a child process: the
// same binary running `serve` on a free loopback port with a fresh data
// directory, so what is measured is exactly what operators run.
type serverProc struct {
	cmd      *exec.Cmd
	pid      int
	addr     string // 127.0.0.1:port
	base     string // http://addr
	dir      string
	logPath  string
	logFile  *os.File
	opToken  string
	exited   chan struct{}
	exitErr  error
	stopping bool
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freePort asks the kernel for a port nobody listens on.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts `exe serve` in dir and waits until it is ready.
func startServer(ctx context.Context, exe, dir string, logf func(string, ...any)) (*serverProc, error) {
	return startServerWith(ctx, exe, dir, serverOpts{}, logf)
}

// serverOpts are what servers sharing a store have in common.
type serverOpts struct {
	OpToken string   // default: a random one
	Env     []string // added to the server's environment, after the defaults
}

// startServerWith is startServer with opts.
func startServerWith(ctx context.Context, exe, dir string, opts serverOpts, logf func(string, ...any)) (*serverProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	s := &serverProc{
		addr:    "127.0.0.1:" + strconv.Itoa(port),
		dir:     dir,
		logPath: filepath.Join(dir, "server.log"),
		opToken: opts.OpToken,
		exited:  make(chan struct{}),
	}
	if s.opToken == "" {
		s.opToken = "lt-" + randomHex(24)
	}
	s.base = "http://" + s.addr
	s.logFile, err = os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "serve", "--addr", s.addr, "--data", filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(),
		"ONEBOX_OPERATOR_TOKEN="+s.opToken,
		"ONEBOX_LOG_LEVEL=warn",
		"ONEBOX_PUBLIC_URL=",
		// Thousands of sign-ins and sockets per agent from one address
		// are the point here, not an attack.
		"ONEBOX_RATE_SIGNIN=off",
		"ONEBOX_RATE_SESSION=off",
		"ONEBOX_MAX_SOCKETS_PER_AGENT=off",
		// One line per garbage collection in the server log: live heap
		// sizes, to tell heap from other memory when reading the RSS.
		"GODEBUG=gctrace=1",
	)
	cmd.Env = append(cmd.Env, opts.Env...)
	cmd.Stdout = s.logFile
	cmd.Stderr = s.logFile
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		s.logFile.Close()
		return nil, fmt.Errorf("start server: %w", err)
	}
	s.cmd, s.pid = cmd, cmd.Process.Pid
	go func() {
		s.exitErr = cmd.Wait()
		close(s.exited)
	}()
	logf("server: pid %d on %s, data and log in %s", s.pid, s.addr, dir)
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *serverProc) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/readyz", nil)
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("server exited before it was ready (%v); its log:\n%s", s.exitErr, s.logTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after %s; its log:\n%s", limit, s.logTail(20))
		}
	}
}

// alive reports an early exit of the server as an error.
func (s *serverProc) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("the server exited (%v); its log:\n%s", s.exitErr, s.logTail(20))
	default:
		return nil
	}
}

// stop asks the server to shut down (SIGTERM) and kills it if it has not
// exited within 20 seconds.
func (s *serverProc) stop() {
	if s.cmd == nil || s.stopping {
		return
	}
	s.stopping = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.logFile.Close()
}

// logTail is the end of the server's log, for error messages.
func (s *serverProc) logTail(lines int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "  " + strings.Join(all, "\n  ")
}

// gcStat is what the server's last garbage collection reported.
type gcStat struct {
	N      int   // collections so far
	Live   int64 // heap marked live, bytes
	Goal   int64 // heap size the next collection waits for
	Stacks int64 // goroutine stacks scanned (Go 1.22+ gctrace), or -1
}

// lastGC reads the server's gctrace lines ("gc 12 @3.1s 2%: ... 4->5->3 MB,
// 8 MB goal, 1 MB stacks, ...") from its log.
func (s *serverProc) lastGC() (gcStat, error) {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return gcStat{}, err
	}
	return parseGCTrace(b)
}

func parseGCTrace(b []byte) (gcStat, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var last gcStat
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gc ") {
			continue
		}
		st := gcStat{Stacks: -1}
		ok := false
		for _, field := range strings.Split(line, ", ") {
			v, unit, found := strings.Cut(field, " MB")
			if !found {
				continue
			}
			switch strings.TrimSpace(unit) {
			case "":
				parts := strings.Split(v, "->")
				if len(parts) == 3 {
					if live, err := strconv.ParseInt(parts[2], 10, 64); err == nil {
						st.Live, ok = live<<20, true
					}
				}
			case "goal":
				if g, err := strconv.ParseInt(v, 10, 64); err == nil {
					st.Goal = g << 20
				}
			case "stacks":
				if g, err := strconv.ParseInt(v, 10, 64); err == nil {
					st.Stacks = g << 20
				}
			}
		}
		if ok {
			n++
			last = st
		}
	}
	if n == 0 {
		return gcStat{}, errors.New("no gctrace lines in the server log")
	}
	last.N = n
	return last, nil
}
