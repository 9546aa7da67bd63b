// Package ws runs OneBox's WebSocket session protocol (see CONTRACT.md, "The
// event log and the live stream") on connections an HTTP server has hijacked.
// It is the only package that imports coder/websocket.
//
// Each connection costs one goroutine (its reader) and two small buffers;
// writes of live frames are done by the hub's worker pool and pings by a
// shared ticker, so an idle socket has nothing else running for it.
package ws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

// Backend is what the protocol needs from the inbox service.
type Backend interface {
	// Authenticate resolves a session token; inbox.ErrUnauthorized when it
	// is bad, expired or revoked.
	Authenticate(ctx context.Context, token string) (inbox.Principal, error)
	// Events returns up to limit events with seq > since and the head;
	// reset when since is older than the log retains or greater than head.
	Events(ctx context.Context, p inbox.Principal, since uint64, limit int) (events []inbox.Event, head uint64, reset bool, err error)
}

// Options configure a Server. Zero values pick the defaults noted.
type Options struct {
	Backend Backend  // required
	Hub     *hub.Hub // required
	// AllowedOrigins are extra Origin host patterns (path.Match syntax,
	// e.g. "app.example.com" or "https://*.example.com") allowed to open a
	// socket from a browser; the request's own host is always allowed.
	AllowedOrigins  []string
	HelloTimeout    time.Duration // default 5s (contract)
	PingInterval    time.Duration // default 30s
	PingTimeout     time.Duration // default 10s: no pong by then closes the socket
	PingConcurrency int           // pings in flight at once; default 256
	WriteTimeout    time.Duration // handshake and replay writes; default 10s
	CallTimeout     time.Duration // one Backend call; default 10s
	ReadLimit       int64         // largest client message; default 64 KiB
	ReplayPage      int           // events per Backend.Events call; default 200
	// TypingInterval is the least time between two typing frames relayed
	// from one socket; faster ones are dropped. Default 200ms.
	TypingInterval time.Duration
	// MaxSocketsPerAgent caps one agent's open sockets; the next one is
	// closed with 1013 (try again later) after its hello. Default 20;
	// negative means no cap.
	MaxSocketsPerAgent int
	// MaxSockets caps this process's open sockets, so they can never take
	// the file descriptors the store, providers' calls and the HTTP API
	// need: past it a new socket is answered 503 before the upgrade, and
	// the client tries again (through a load balancer, likely elsewhere).
	// Default: the open-file limit less a reserve (DefaultMaxSockets);
	// negative means no cap.
	MaxSockets int
	// FrameRate and FrameBurst limit the frames a client may send on one
	// socket (per second, and at once); a flood closes the socket with
	// 1008 (policy violation). Defaults 20/s and 60.
	FrameRate  float64
	FrameBurst int
	Logger     *slog.Logger // default: discard
}

// Stats are counters for metrics.
type Stats struct {
	Connections  int64  // WebSockets open now (past the HTTP upgrade)
	FramesSent   uint64 // data frames written (replay and live)
	AuthFailures uint64 // hello timeouts and bad tokens
	PingFailures uint64 // sockets closed because a ping went unanswered
	SlowCloses   uint64 // sockets closed as slow consumers (from the hub)
	// Limit hits, each a close the client caused.
	AgentLimitCloses uint64 // 1013: the agent already has MaxSocketsPerAgent sockets
	FloodCloses      uint64 // 1008: frames faster than FrameRate/FrameBurst
	TooBigCloses     uint64 // 1009: a frame larger than ReadLimit
	CapacityRefusals uint64 // 503 before the upgrade: MaxSockets reached
	// Admitted counts sockets against MaxSockets: from the upgrade request
	// until the socket is gone.
	Admitted int64
}

// Server accepts WebSocket sessions and tracks them so Shutdown can close
// them: the HTTP server no longer knows a hijacked connection.
type Server struct {
	opts   Options
	log    *slog.Logger
	accept websocket.AcceptOptions

	mu       sync.Mutex
	conns    map[*conn]uint8 // value: ping slot
	perAgent map[string]int  // open sockets by tenant/agent, for MaxSocketsPerAgent
	nextSlot uint8
	closed   bool
	serving  sync.WaitGroup // ServeConn calls
	pinging  sync.WaitGroup // ping goroutines
	stop     chan struct{}
	pingDone chan struct{}
	corkPool *sync.Pool // batch buffers for sockets that are behind
	pingSem  chan struct{}

	connections  atomic.Int64
	framesSent   atomic.Uint64
	authFailures atomic.Uint64
	pingFailures atomic.Uint64

	agentLimitCloses, floodCloses, tooBigCloses atomic.Uint64

	// admitted counts sockets from the moment ServeConn takes them until
	// they end, for MaxSockets.
	admitted         atomic.Int64
	capacityRefusals atomic.Uint64
}

// NewServer returns a Server and starts its pinger; Shutdown stops it.
func NewServer(opts Options) *Server {
	if opts.HelloTimeout <= 0 {
		opts.HelloTimeout = 5 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 30 * time.Second
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 10 * time.Second
	}
	if opts.PingConcurrency <= 0 {
		opts.PingConcurrency = 256
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.ReadLimit <= 0 {
		opts.ReadLimit = 64 << 10
	}
	if opts.ReplayPage <= 0 {
		opts.ReplayPage = 200
	}
	if opts.TypingInterval <= 0 {
		opts.TypingInterval = 200 * time.Millisecond
	}
	if opts.MaxSocketsPerAgent == 0 {
		opts.MaxSocketsPerAgent = 20
	}
	if opts.MaxSockets == 0 {
		opts.MaxSockets = DefaultMaxSockets()
	}
	if opts.FrameRate <= 0 {
		opts.FrameRate = 20
	}
	if opts.FrameBurst <= 0 {
		opts.FrameBurst = 60
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		corkPool: newCorkPool(),
		opts:     opts,
		log:      opts.Logger,
		accept: websocket.AcceptOptions{
			OriginPatterns:  opts.AllowedOrigins,
			CompressionMode: websocket.CompressionDisabled, // a deflate context per socket costs more than the budget
		},
		conns:    make(map[*conn]uint8),
		perAgent: make(map[string]int),
		stop:     make(chan struct{}),
		pingDone: make(chan struct{}),
		pingSem:  make(chan struct{}, opts.PingConcurrency),
	}
	go s.pinger()
	return s
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:  s.connections.Load(),
		FramesSent:   s.framesSent.Load(),
		AuthFailures: s.authFailures.Load(),
		PingFailures: s.pingFailures.Load(),
		SlowCloses:   s.opts.Hub.Stats().SlowCloses,

		AgentLimitCloses: s.agentLimitCloses.Load(),
		FloodCloses:      s.floodCloses.Load(),
		TooBigCloses:     s.tooBigCloses.Load(),
		CapacityRefusals: s.capacityRefusals.Load(),
		Admitted:         s.admitted.Load(),
	}
}

// ServeConn runs one WebSocket session on a connection the HTTP server has
// hijacked, r being a copy of the upgrade request. It returns when the
// socket is closed, and closes nc.
//
// The upgrade, hello and replay run on a short-lived goroutine: they need a
// deep stack (JSON encoding, net/http helpers), and a goroutine keeps the
// stack it once grew to. The calling goroutine, which lives as long as the
// socket, only ever runs the shallow read loop and so keeps a 4 KiB stack
// instead of 8 KiB, a third of an idle socket's cost.
func (s *Server) ServeConn(nc net.Conn, r *http.Request) {
	if !s.admit() {
		s.capacityRefusals.Add(1)
		w := newHijackWriter(nc, s.corkPool)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "this server holds as many live connections as it can; try again", http.StatusServiceUnavailable)
		_ = nc.Close()
		return
	}
	defer s.admitted.Add(-1)
	started := make(chan *conn, 1)
	go func() { started <- s.start(nc, r) }()
	if c := <-started; c != nil {
		c.run()
	}
}

// start upgrades nc and runs the session up to the live phase. It returns
// nil when the session is already over, everything cleaned up.
func (s *Server) start(nc net.Conn, r *http.Request) *conn {
	w := newHijackWriter(nc, s.corkPool)
	if !s.enter() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		_ = nc.Close()
		return nil
	}
	wsc, err := websocket.Accept(w, r, &s.accept)
	if err != nil {
		// Accept has written the error response.
		s.log.Debug("ws: upgrade refused", "remote", r.RemoteAddr, "err", err)
		_ = nc.Close()
		s.serving.Done()
		return nil
	}
	wsc.SetReadLimit(s.opts.ReadLimit)
	c := &conn{srv: s, ws: wsc, nc: nc, cork: w.cork, done: make(chan struct{})}
	if !s.track(c) {
		c.shut(websocket.StatusGoingAway, "server shutting down", false)
		_ = nc.Close()
		s.serving.Done()
		return nil
	}
	if !c.handshake() {
		c.end()
		return nil
	}
	return c
}

// Shutdown closes every socket with 1001 (going away) and waits for them
// and the pinger. When ctx ends first, remaining connections are cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.shut(websocket.StatusGoingAway, "server shutting down", true)
	}
	done := make(chan struct{})
	go func() {
		s.serving.Wait()
		<-s.pingDone
		s.pinging.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			_ = c.nc.Close() // unblocks reads, writes and close handshakes
		}
		return fmt.Errorf("ws: shutdown: %w", ctx.Err())
	}
}

// enter admits a ServeConn unless shutting down. Checking closed under the
// lock keeps serving.Add from racing serving.Wait.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.serving.Add(1)
	return true
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = s.nextSlot
	s.nextSlot = (s.nextSlot + 1) % pingSlots
	s.connections.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connections.Add(-1)
}

// claimAgent counts one more socket for an agent, unless it has
// MaxSocketsPerAgent already.
func (s *Server) claimAgent(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max := s.opts.MaxSocketsPerAgent; max > 0 && s.perAgent[key] >= max {
		return false
	}
	s.perAgent[key]++
	return true
}

func (s *Server) releaseAgent(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAgent[key] <= 1 {
		delete(s.perAgent, key)
		return
	}
	s.perAgent[key]--
}

// countReadError counts a read that failed because the client sent a
// frame over ReadLimit; the library has already closed the socket with 1009.
func (s *Server) countReadError(err error) {
	if errors.Is(err, websocket.ErrMessageTooBig) {
		s.tooBigCloses.Add(1)
	}
}

// admit counts one more socket unless MaxSockets are open already.
func (s *Server) admit() bool {
	max := int64(s.opts.MaxSockets)
	for {
		n := s.admitted.Load()
		if max > 0 && n >= max {
			return false
		}
		if s.admitted.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// socketsWithin is what DefaultMaxSockets leaves to sockets out of an
// open-file limit.
func socketsWithin(limit uint64) int {
	const maxInt = int(^uint(0) >> 1)
	if limit > uint64(maxInt) {
		return 0 // unlimited
	}
	reserve := max(uint64(1024), limit/10)
	if limit <= 2*reserve {
		return 0 // too few files to split; the HTTP bound and the OS decide
	}
	return int(limit - reserve)
}
