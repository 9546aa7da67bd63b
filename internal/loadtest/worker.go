package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// The parent drives each worker process with one JSON command per line on
// the worker's stdin and reads exactly one JSON reply line per command on
// its stdout. A worker holds up to a few thousand client sockets: one
// process may only have 20,000 open files here, and the server's side of
// each socket needs one too.

type workerCmd struct {
	Op       string       `json:"op"` // connect, stats, reset, close
	URL      string       `json:"url,omitempty"`
	Source   string       `json:"source,omitempty"` // local IP to dial from
	Sockets  []socketSpec `json:"sockets,omitempty"`
	Parallel int          `json:"parallel,omitempty"`
	Hist     bool         `json:"hist,omitempty"` // stats: include histograms
}

type socketSpec struct {
	Token string `json:"t"`
	Since uint64 `json:"s"`
	// URL, when set, is where this socket connects instead of the
	// command's URL: sockets spread over several servers.
	URL string `json:"u,omitempty"`
}

type workerReply struct {
	Op    string       `json:"op"`
	Err   string       `json:"err,omitempty"`
	Stats *workerStats `json:"stats,omitempty"`
}

type workerStats struct {
	Open          int64             `json:"open"`           // sockets welcomed and not closed
	Connected     int64             `json:"connected"`      // welcomes received, ever
	ConnectFailed int64             `json:"connect_failed"` // dial, hello or welcome failures
	FirstError    string            `json:"first_error,omitempty"`
	Frames        uint64            `json:"frames"` // all frames after the welcome
	Events        uint64            `json:"events"`
	Stamped       uint64            `json:"stamped"` // message.created frames carrying a send stamp
	Gaps          uint64            `json:"gaps"`    // an event seq skipped ahead on a socket
	Dups          uint64            `json:"dups"`    // an event seq repeated or went back
	Resets        uint64            `json:"resets"`
	Closes        map[string]uint64 `json:"closes,omitempty"` // unexpected closes by code
	MinAtNS       int64             `json:"min_at_ns,omitempty"`
	MaxArrivalNS  int64             `json:"max_arrival_ns,omitempty"`
	CPUSeconds    float64           `json:"cpu_s"`
	RSSBytes      int64             `json:"rss"`
	At            *HistData         `json:"at_hist,omitempty"`   // event created -> arrived
	Send          *HistData         `json:"send_hist,omitempty"` // message sent -> arrived
}

// clientSock is one client socket. Only its reader goroutine touches lastSeq.
type clientSock struct {
	c       *websocket.Conn
	lastSeq uint64
}

type worker struct {
	out *json.Encoder

	mu       sync.Mutex
	socks    []*clientSock
	closes   map[string]uint64
	firstErr string
	closing  atomic.Bool
	readers  sync.WaitGroup

	open, connected, connectFailed atomic.Int64
	frames, events, stamped        atomic.Uint64
	gaps, dups, resets             atomic.Uint64
	minAt, maxArrival              atomic.Int64
	atHist, sendHist               Histogram
}

var frameBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// RunWorker is the hidden `onebox loadtest -worker` process. It returns when
// told to close, when stdin ends (the parent is gone), or at deadline.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer, deadline time.Duration) error {
	raiseFileLimit()
	if deadline <= 0 {
		deadline = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	w := &worker{out: json.NewEncoder(out), closes: map[string]uint64{}}
	defer w.closeAll()

	lines := make(chan []byte)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			line := append([]byte(nil), sc.Bytes()...)
			select {
			case lines <- line:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		var line []byte
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case line, ok = <-lines:
			if !ok {
				return nil
			}
		}
		var cmd workerCmd
		if err := json.Unmarshal(line, &cmd); err != nil {
			return fmt.Errorf("worker: bad command: %w", err)
		}
		reply := workerReply{Op: cmd.Op}
		switch cmd.Op {
		case "connect":
			if err := w.connect(ctx, cmd); err != nil {
				reply.Err = err.Error()
			}
			reply.Stats = w.stats(false)
		case "stats":
			reply.Stats = w.stats(cmd.Hist)
		case "reset":
			w.reset()
		case "close":
			w.closeAll()
			reply.Stats = w.stats(false)
			return w.out.Encode(reply)
		default:
			reply.Err = "unknown op " + strconv.Quote(cmd.Op)
		}
		if err := w.out.Encode(reply); err != nil {
			return err
		}
	}
}

func (w *worker) connect(ctx context.Context, cmd workerCmd) error {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if cmd.Source != "" {
		ip := net.ParseIP(cmd.Source)
		if ip == nil {
			return fmt.Errorf("bad source address %q", cmd.Source)
		}
		dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	hc := &http.Client{Transport: &http.Transport{
		Proxy:              nil,
		DialContext:        dialer.DialContext,
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}}
	par := cmd.Parallel
	if par <= 0 {
		par = 64
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for _, spec := range cmd.Sockets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func(spec socketSpec) {
			defer func() { <-sem; wg.Done() }()
			url := cmd.URL
			if spec.URL != "" {
				url = spec.URL
			}
			if err := w.dial(ctx, hc, url, spec); err != nil {
				w.connectFailed.Add(1)
				w.mu.Lock()
				if w.firstErr == "" {
					w.firstErr = err.Error()
				}
				w.mu.Unlock()
			}
		}(spec)
	}
	wg.Wait()
	return nil
}

// dial opens one socket, says hello and waits for the welcome, then leaves
// a reader running for it (it must read to answer the server's pings).
func (w *worker) dial(ctx context.Context, hc *http.Client, url string, spec socketSpec) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:      hc,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	c.SetReadLimit(4 << 20)
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": spec.Token, "since": spec.Since})
	if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
		c.CloseNow()
		return fmt.Errorf("hello: %w", err)
	}
	_, data, err := c.Read(ctx)
	if err != nil {
		c.CloseNow()
		return fmt.Errorf("waiting for welcome: %w", err)
	}
	f, err := parseFrame(data)
	if err != nil || (f.Kind != "welcome" && f.Kind != "reset") {
		c.CloseNow()
		return fmt.Errorf("expected a welcome, got %.200s", data)
	}
	s := &clientSock{c: c, lastSeq: spec.Since}
	w.mu.Lock()
	if w.closing.Load() {
		w.mu.Unlock()
		c.CloseNow()
		return errors.New("worker closing")
	}
	w.socks = append(w.socks, s)
	w.readers.Add(1)
	w.mu.Unlock()
	w.connected.Add(1)
	w.open.Add(1)
	go w.read(s)
	return nil
}

func (w *worker) read(s *clientSock) {
	defer w.readers.Done()
	defer w.open.Add(-1)
	for {
		_, r, err := s.c.Reader(context.Background())
		if err != nil {
			if !w.closing.Load() {
				code := "eof"
				if st := websocket.CloseStatus(err); st != -1 {
					code = strconv.Itoa(int(st))
				}
				w.mu.Lock()
				w.closes[code]++
				w.mu.Unlock()
			}
			s.c.CloseNow()
			return
		}
		buf := frameBufs.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r)
		now := time.Now().UnixNano()
		if err == nil {
			w.handle(s, buf.Bytes(), now)
		}
		if buf.Cap() <= 64<<10 {
			frameBufs.Put(buf)
		}
	}
}

func (w *worker) handle(s *clientSock, b []byte, now int64) {
	w.frames.Add(1)
	f, err := parseFrame(b)
	if err != nil {
		return
	}
	switch f.Kind {
	case "event":
	case "reset":
		w.resets.Add(1)
		s.lastSeq = f.Head
		return
	default:
		return
	}
	w.events.Add(1)
	switch {
	case f.Seq == s.lastSeq+1:
	case f.Seq > s.lastSeq+1:
		w.gaps.Add(1)
	default:
		w.dups.Add(1)
	}
	s.lastSeq = f.Seq
	if f.At > 0 {
		w.atHist.Record(time.Duration(now - f.At))
		casMin(&w.minAt, f.At)
	}
	casMax(&w.maxArrival, now)
	if f.Stamp > 0 {
		w.stamped.Add(1)
		w.sendHist.Record(time.Duration(now - f.Stamp))
	}
}

func casMin(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if (old != 0 && old <= v) || a.CompareAndSwap(old, v) {
			return
		}
	}
}

func casMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if old >= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}

func (w *worker) reset() {
	w.frames.Store(0)
	w.events.Store(0)
	w.stamped.Store(0)
	w.gaps.Store(0)
	w.dups.Store(0)
	w.resets.Store(0)
	w.minAt.Store(0)
	w.maxArrival.Store(0)
	w.atHist.Reset()
	w.sendHist.Reset()
	w.mu.Lock()
	clear(w.closes)
	w.mu.Unlock()
}

func (w *worker) stats(hist bool) *workerStats {
	st := &workerStats{
		Open: w.open.Load(), Connected: w.connected.Load(), ConnectFailed: w.connectFailed.Load(),
		Frames: w.frames.Load(), Events: w.events.Load(), Stamped: w.stamped.Load(),
		Gaps: w.gaps.Load(), Dups: w.dups.Load(), Resets: w.resets.Load(),
		MinAtNS: w.minAt.Load(), MaxArrivalNS: w.maxArrival.Load(),
		CPUSeconds: selfCPU().Seconds(),
	}
	if m, err := readProcMem(0); err == nil {
		st.RSSBytes = m.RSS
	}
	w.mu.Lock()
	st.FirstError = w.firstErr
	if len(w.closes) > 0 {
		st.Closes = make(map[string]uint64, len(w.closes))
		for k, v := range w.closes {
			st.Closes[k] = v
		}
	}
	w.mu.Unlock()
	if hist {
		a, s := w.atHist.Data(), w.sendHist.Data()
		st.At, st.Send = &a, &s
	}
	return st
}

// closeAll says goodbye on every socket (1000), giving up after a few
// seconds, and waits for the readers to stop.
func (w *worker) closeAll() {
	w.mu.Lock()
	if w.closing.Swap(true) {
		w.mu.Unlock()
		return
	}
	socks := w.socks
	w.socks = nil
	w.mu.Unlock()
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, s := range socks {
		sem <- struct{}{}
		wg.Add(1)
		go func(s *clientSock) {
			defer func() { <-sem; wg.Done() }()
			t := time.AfterFunc(3*time.Second, func() { s.c.CloseNow() })
			_ = s.c.Close(websocket.StatusNormalClosure, "load test done")
			t.Stop()
		}(s)
	}
	wg.Wait()
	w.readers.Wait()
}

// selfCPU is the user+system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
