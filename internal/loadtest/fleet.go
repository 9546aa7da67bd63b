package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"time"
)

// fleet is the client side of a test: worker processes each holding a
// share of the sockets, dialling from their own loopback address.
type fleet struct {
	workers []*workerProc
	sockets int
}

type workerProc struct {
	id      int
	source  string
	cmd     *exec.Cmd
	in      io.WriteCloser
	replies chan workerReply
	exited  chan struct{}
	exitErr error
	mu      sync.Mutex // one command at a time
}

// startWorker runs `exe loadtest -worker`.
func startWorker(exe string, id int, deadline time.Duration, stderr io.Writer) (*workerProc, error) {
	cmd := exec.Command(exe, "loadtest", "-worker", "-worker-deadline", deadline.String())
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	w := &workerProc{
		id: id, source: "127.0.0." + strconv.Itoa(2+id%250), cmd: cmd, in: in,
		replies: make(chan workerReply, 1), exited: make(chan struct{}),
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var r workerReply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = workerReply{Err: "bad reply: " + err.Error()}
			}
			w.replies <- r
		}
		w.exitErr = cmd.Wait()
		close(w.exited)
	}()
	return w, nil
}

// call sends one command and waits for its reply.
func (w *workerProc) call(ctx context.Context, cmd workerCmd) (workerReply, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, err := json.Marshal(cmd)
	if err != nil {
		return workerReply{}, err
	}
	if _, err := w.in.Write(append(b, '\n')); err != nil {
		return workerReply{}, fmt.Errorf("worker %d: %w", w.id, err)
	}
	select {
	case r := <-w.replies:
		if r.Err != "" {
			return r, fmt.Errorf("worker %d: %s", w.id, r.Err)
		}
		return r, nil
	case <-w.exited:
		return workerReply{}, fmt.Errorf("worker %d exited: %v", w.id, w.exitErr)
	case <-ctx.Done():
		return workerReply{}, ctx.Err()
	}
}

// stop asks the worker to close its sockets and exit, killing it if it
// takes too long.
func (w *workerProc) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = w.call(ctx, workerCmd{Op: "close"})
	w.in.Close()
	select {
	case <-w.exited:
	case <-time.After(5 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

// newFleet starts enough workers for n sockets, perWorker each.
func newFleet(exe string, n, perWorker int, deadline time.Duration, stderr io.Writer) (*fleet, error) {
	if perWorker <= 0 {
		perWorker = 5000
	}
	f := &fleet{}
	for i := 0; i*perWorker < n; i++ {
		w, err := startWorker(exe, i, deadline, stderr)
		if err != nil {
			f.stop()
			return nil, err
		}
		f.workers = append(f.workers, w)
	}
	return f, nil
}

func (f *fleet) stop() {
	var wg sync.WaitGroup
	for _, w := range f.workers {
		wg.Add(1)
		go func(w *workerProc) { defer wg.Done(); w.stop() }(w)
	}
	wg.Wait()
	f.workers = nil
}

// each runs fn on every worker at once.
func (f *fleet) each(fn func(w *workerProc) error) error {
	errs := make([]error, len(f.workers))
	var wg sync.WaitGroup
	for i, w := range f.workers {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(w) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// connect spreads the sockets over the workers, in order.
func (f *fleet) connect(ctx context.Context, url string, specs []socketSpec, perWorker, parallel int) (fleetStats, error) {
	if perWorker <= 0 {
		perWorker = 5000
	}
	err := f.each(func(w *workerProc) error {
		lo := w.id * perWorker
		if lo >= len(specs) {
			return nil
		}
		hi := min(lo+perWorker, len(specs))
		_, err := w.call(ctx, workerCmd{Op: "connect", URL: url, Source: w.source, Sockets: specs[lo:hi], Parallel: parallel})
		return err
	})
	f.sockets += len(specs)
	if err != nil {
		return fleetStats{at: new(Histogram), send: new(Histogram)}, err
	}
	return f.stats(ctx, false)
}

func (f *fleet) reset(ctx context.Context) error {
	return f.each(func(w *workerProc) error {
		_, err := w.call(ctx, workerCmd{Op: "reset"})
		return err
	})
}

// fleetStats adds up the workers' stats.
type fleetStats struct {
	workerStats
	ClientRSS int64
	at, send  *Histogram
}

func (f *fleet) stats(ctx context.Context, hist bool) (fleetStats, error) {
	all := make([]*workerStats, len(f.workers))
	err := f.each(func(w *workerProc) error {
		r, err := w.call(ctx, workerCmd{Op: "stats", Hist: hist})
		all[w.id] = r.Stats
		return err
	})
	s := fleetStats{at: new(Histogram), send: new(Histogram)}
	if err != nil {
		return s, err
	}
	s.Closes = map[string]uint64{}
	for _, w := range all {
		if w == nil {
			continue
		}
		s.Open += w.Open
		s.Connected += w.Connected
		s.ConnectFailed += w.ConnectFailed
		if s.FirstError == "" {
			s.FirstError = w.FirstError
		}
		s.Frames += w.Frames
		s.Events += w.Events
		s.Stamped += w.Stamped
		s.Gaps += w.Gaps
		s.Dups += w.Dups
		s.Resets += w.Resets
		for k, v := range w.Closes {
			s.Closes[k] += v
		}
		if w.MinAtNS != 0 && (s.MinAtNS == 0 || w.MinAtNS < s.MinAtNS) {
			s.MinAtNS = w.MinAtNS
		}
		s.MaxArrivalNS = max(s.MaxArrivalNS, w.MaxArrivalNS)
		s.CPUSeconds += w.CPUSeconds
		s.ClientRSS += w.RSSBytes
		if w.At != nil {
			if err := s.at.MergeData(*w.At); err != nil {
				return s, err
			}
		}
		if w.Send != nil {
			if err := s.send.MergeData(*w.Send); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}

// closedSummary describes unexpected socket closes, e.g. "4008 x12, eof x1".
func closedSummary(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	s := ""
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%s x%d", k, m[k])
	}
	return s
}
