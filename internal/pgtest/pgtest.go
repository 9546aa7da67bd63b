// Package pgtest runs a throwaway PostgreSQL server for tests: Debian's
// server binaries, a cluster initialised in a temporary directory, listening
// on a free 127.0.0.1 port. One server serves a whole test binary (start it
// from TestMain with Run); every test that asks gets an empty schema of its
// own in the shared test database, which the DSN puts first on the
// search_path. A schema costs milliseconds where CREATE DATABASE costs a
// third of a second; code under test sees no difference, as long as it does
// not name schemas. Advisory locks are per database, so tests share those.
//
// When the binaries are missing, tests that need them skip, unless CI=true,
// where they fail: a CI run must not pass by testing nothing.
// scripts/ensure-postgres.sh installs them.
//
// The cluster trades durability for speed (commits do not wait for their
// WAL flush) unless a test asks for Durable: it lives only as long as the
// test binary.
package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// shared is the test binary's server. A package variable because TestMain
// and the tests share nothing else; it is started by the first test that
// needs it and stopped by Run once every test is done.
var shared struct {
	mu      sync.Mutex
	started bool
	srv     *server
	err     error
	missing bool
}

// Run runs the tests and then stops the server if one was started. Call it
// from TestMain: os.Exit(pgtest.Run(m)).
func Run(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		if err := shared.srv.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
		shared.srv = nil
	}
	return code
}

// DSN creates a fresh, empty schema for t and returns a connection string
// that works in it. The schema is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	srv, err := server1()
	if err != nil {
		if errors.Is(err, errMissing) && os.Getenv("CI") != "true" {
			t.Skipf("pgtest: %v; install Debian's postgresql (scripts/ensure-postgres.sh) to run the PostgreSQL tests", err)
		}
		t.Fatalf("pgtest: %v", err)
	}
	name, err := srv.createSchema()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.dropSchema(name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return srv.dsn(testDB) + "&search_path=" + name
}

// testDB holds the tests' schemas.
const testDB = "onebox_test"

// Durable turns a DSN from DSN into one whose commits wait for their WAL to
// be fsynced, as on a production server, for benchmarks.
func Durable(dsn string) string { return dsn + "&synchronous_commit=on" }

// Available reports whether the server binaries were found, for callers
// deciding whether to run PostgreSQL variants at all.
func Available() bool {
	_, err := findBin()
	return err == nil
}

var errMissing = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

func server1() (*server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		shared.srv, shared.err = start()
	}
	return shared.srv, shared.err
}

type server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	exit chan struct{} // closed when the postmaster has exited
	log  *tail

	mu    sync.Mutex
	admin *pgx.Conn // on testDB
	next  int
}

// findBin returns the directory of the newest installed server version.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errMissing
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func start() (_ *server, err error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "onebox-pgtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	// PostgreSQL refuses to run as root: run it as the postgres user, who
	// must own the directory.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		// Commits do not wait for the WAL flush, which makes tests fast; a
		// session that sets synchronous_commit=on (Durable) gets real,
		// fsynced commits, so benchmarks can measure the real thing.
		"-c", "synchronous_commit=off",
		"-c", "max_connections=400", "-c", "shared_buffers=64MB",
		"-c", "log_min_messages=warning", "-c", "log_statement=none")
	cmd.Dir = dir
	// Pdeathsig: a test binary killed before Run stops the server must not
	// leave it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	// A pipe of our own rather than StderrPipe: the log is read until the
	// server and its children close it, independently of Wait.
	stderr, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = w
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		_ = stderr.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &server{dir: dir, port: port, cmd: cmd, exit: make(chan struct{}), log: &tail{}}
	ready := make(chan struct{})
	go s.watch(stderr, ready)
	go func() { _ = cmd.Wait(); close(s.exit) }()
	select {
	case <-ready:
	case <-s.exit:
		return nil, fmt.Errorf("postgres exited during start:\n%s", s.log)
	case <-time.After(60 * time.Second):
		_ = s.stop()
		return nil, fmt.Errorf("postgres not ready after 60s:\n%s", s.log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.admin, err = pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		_ = s.stop()
		return nil, fmt.Errorf("connect to the test server: %w", err)
	}
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+testDB); err != nil {
		_ = s.stop()
		return nil, fmt.Errorf("create the test database: %w", err)
	}
	_ = s.admin.Close(ctx)
	if s.admin, err = pgx.Connect(ctx, s.dsn(testDB)); err != nil {
		_ = s.stop()
		return nil, fmt.Errorf("connect to the test database: %w", err)
	}
	return s, nil
}

// watch drains the server's log, keeping the end of it for error messages,
// and reports when the server accepts connections. The log line is the
// server's own signal; nothing polls.
func (s *server) watch(r *os.File, ready chan struct{}) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		s.log.add(line)
		if !signalled && strings.Contains(line, "database system is ready to accept connections") {
			signalled = true
			close(ready)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

func (s *server) createSchema() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	name := fmt.Sprintf("test_%d", s.next)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", fmt.Errorf("create schema: %w", err)
	}
	return name, nil
}

func (s *server) dropSchema(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.admin.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema: %w", err)
	}
	return nil
}

// stop shuts the server down (fast mode: sessions are cut) and removes
// its directory.
func (s *server) stop() error {
	s.mu.Lock()
	if s.admin != nil {
		_ = s.admin.Close(context.Background())
		s.admin = nil
	}
	s.mu.Unlock()
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exit:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exit
	}
	return os.RemoveAll(s.dir)
}

// tail keeps the last lines of the server's log.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 50 {
		t.lines = t.lines[len(t.lines)-50:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
