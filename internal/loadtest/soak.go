package loadtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// SoakConfig is the soak scenario: thousands of sockets and steady traffic
// for minutes, reading the server's memory and goroutines as it goes. A
// leak that costs nothing in a 10-second benchmark (a goroutine per
// closed request, a map that is never pruned) shows up here as drift
// between the first and the last sample.
type SoakConfig struct {
	Duration time.Duration // -soak: how long the traffic runs
	Sockets  int           // -sockets: WebSockets held open throughout
	Tenants  int           // -soak-tenants: the sockets are spread over them
	Agents   int           // -soak-agents: agents per tenant; each has several sessions
	Rate     int           // -soak-rate: agents' messages per second, all tenants
	Reads    int           // -soak-reads: conversation list reads per second
	Every    time.Duration // -soak-sample: time between memory samples
}

func defaultSoak() SoakConfig {
	return SoakConfig{Sockets: 5000, Tenants: 50, Agents: 10, Rate: 50, Reads: 20, Every: 30 * time.Second}
}

func (s *SoakConfig) flags(fs *flag.FlagSet) {
	fs.DurationVar(&s.Duration, "soak", s.Duration, "run the soak scenario for this long (alone, unless -scenario names others too)")
	fs.IntVar(&s.Sockets, "sockets", s.Sockets, "soak: WebSockets held open for the whole run")
	fs.IntVar(&s.Tenants, "soak-tenants", s.Tenants, "soak: tenants the sockets and traffic are spread over")
	fs.IntVar(&s.Agents, "soak-agents", s.Agents, "soak: agents per tenant (the sockets are their sessions)")
	fs.IntVar(&s.Rate, "soak-rate", s.Rate, "soak: agents' messages per second over all tenants")
	fs.IntVar(&s.Reads, "soak-reads", s.Reads, "soak: conversation list reads per second")
	fs.DurationVar(&s.Every, "soak-sample", s.Every, "soak: time between samples of the server's memory and goroutines")
}

// adjust makes -soak on its own mean "run the soak", and gives the run
// time for its setup on top of the soak itself.
func (s *SoakConfig) adjust(c *Config, fs *flag.FlagSet) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if s.Duration > 0 && !set["scenario"] {
		c.Scenarios = []string{ScenarioSoak}
	}
	soak := false
	for _, sc := range c.Scenarios {
		soak = soak || sc == ScenarioSoak
	}
	if !soak {
		return
	}
	if s.Duration <= 0 {
		s.Duration = 10 * time.Minute
	}
	if !set["timeout"] {
		c.Timeout = s.Duration + 10*time.Minute
	}
}

func (s *SoakConfig) validate() error {
	switch {
	case s.Duration <= 0:
		return errors.New("loadtest: -soak must be positive")
	case s.Sockets <= 0 || s.Tenants <= 0 || s.Agents <= 0:
		return errors.New("loadtest: -sockets, -soak-tenants and -soak-agents must be positive")
	case s.Sockets < s.Tenants:
		return errors.New("loadtest: -sockets must be at least -soak-tenants")
	case s.Rate <= 0 || s.Reads < 0:
		return errors.New("loadtest: -soak-rate must be positive and -soak-reads not negative")
	case s.Every <= 0:
		return errors.New("loadtest: -soak-sample must be positive")
	}
	return nil
}

// soakSample is one reading of the server.
type soakSample struct {
	At         time.Duration // since the traffic began
	RSS, Anon  int64         // /proc/<pid>/status
	File       int64         // file-backed RSS: the binary and the mapped store
	DBSize     int64         // the store's file on disk
	HeapAlloc  float64       // go_memstats_heap_alloc_bytes
	HeapLive   float64       // go_gc_heap_live_bytes: live at the last GC
	Goroutines float64       // go_goroutines
	Sockets    float64       // onebox_websocket_connections
	PostP99    time.Duration // p99 of the messages sent since the previous sample
}

// soakPlan is the traffic of a soak, apart from what it is sent to.
type soakPlan struct {
	Duration time.Duration // traffic, from the first message to the last
	Warm     time.Duration // the first sample is taken this long after the start
	Every    time.Duration
	Rate     int // writes per second
	Reads    int // reads per second
	Workers  int // concurrent calls at most, per kind
}

// soakResult is what runSoak measured.
type soakResult struct {
	Samples          []soakSample
	Sent, SendFailed int64
	Read, ReadFailed int64
	FirstErr         string
	Post, Get        *Histogram
	Took             time.Duration
	LateMax          time.Duration // how far a call started after its slot
	firstErrOnce     sync.Once
	sinceSample      *Histogram
	sinceMu          sync.Mutex
}

func (res *soakResult) fail(err error) {
	res.firstErrOnce.Do(func() { res.FirstErr = firstLine(err.Error()) })
}

// runSoak sends writes and reads on open-loop schedules for plan.Duration
// and samples the server at plan.Warm, every plan.Every after that, and at
// the end. The first sample comes after a warm-up so that caches, pools
// and the heap have reached their working size: drift is measured from
// there to the last sample, both taken under the same traffic.
func runSoak(ctx context.Context, plan soakPlan,
	write, read func(ctx context.Context, i int) error,
	sample func(ctx context.Context) (soakSample, error),
) (*soakResult, error) {
	if plan.Workers <= 0 {
		plan.Workers = 64
	}
	res := &soakResult{Post: new(Histogram), Get: new(Histogram), sinceSample: new(Histogram)}
	begin := time.Now().Add(20 * time.Millisecond)
	end := begin.Add(plan.Duration)
	var lateMax atomic.Int64

	// pace runs fn at rate per second from begin to end on a bounded pool;
	// when the pool is busy the schedule slips, which shows in LateMax.
	pace := func(rate int, fn func(ctx context.Context, i int) error, ok func(time.Duration), failed *int64) func() {
		return func() {
			if rate <= 0 {
				return
			}
			interval := time.Second / time.Duration(rate)
			jobs := make(chan time.Time, 4)
			var wg sync.WaitGroup
			var n atomic.Int64
			for range plan.Workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for slot := range jobs {
						start := time.Now()
						casMax(&lateMax, int64(start.Sub(slot)))
						i := int(n.Add(1) - 1)
						if err := fn(ctx, i); err != nil {
							if ctx.Err() == nil {
								atomic.AddInt64(failed, 1)
								res.fail(err)
							}
							continue
						}
						ok(time.Since(start))
					}
				}()
			}
			for slot := begin; slot.Before(end); slot = slot.Add(interval) {
				if sleepCtx(ctx, time.Until(slot)) != nil {
					break
				}
				select {
				case jobs <- slot:
				case <-ctx.Done():
				}
			}
			close(jobs)
			wg.Wait()
		}
	}
	var sent, got atomic.Int64
	runs := []func(){
		pace(plan.Rate, write, func(d time.Duration) {
			sent.Add(1)
			res.Post.Record(d)
			res.sinceMu.Lock()
			res.sinceSample.Record(d)
			res.sinceMu.Unlock()
		}, &res.SendFailed),
		pace(plan.Reads, read, func(d time.Duration) {
			got.Add(1)
			res.Get.Record(d)
		}, &res.ReadFailed),
	}
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}

	// Samples: after the warm-up, then on the grid, then at the end.
	var sampleErr error
	take := func() {
		s, err := sample(ctx)
		if err != nil {
			if sampleErr == nil && ctx.Err() == nil {
				sampleErr = fmt.Errorf("sample the server: %w", err)
			}
			return
		}
		s.At = time.Since(begin)
		res.sinceMu.Lock()
		s.PostP99 = res.sinceSample.Percentile(0.99)
		res.sinceSample = new(Histogram)
		res.sinceMu.Unlock()
		res.Samples = append(res.Samples, s)
	}
	for _, at := range sampleTimes(plan) {
		if sampleErr != nil || sleepCtx(ctx, time.Until(begin.Add(at))) != nil {
			break
		}
		take()
	}
	wg.Wait()
	res.Sent, res.Read = sent.Load(), got.Load()
	res.Took = time.Since(begin)
	res.LateMax = time.Duration(lateMax.Load())
	if sampleErr != nil {
		return res, sampleErr
	}
	return res, ctx.Err()
}

// sampleTimes are when runSoak samples, from the start of the traffic:
// after the warm-up, every plan.Every, and last just before the traffic
// stops, so that the first and the last are taken under the same load.
func sampleTimes(plan soakPlan) []time.Duration {
	last := plan.Duration - min(plan.Every, plan.Duration)/20
	var out []time.Duration
	for at := min(plan.Warm, last); at < last; at += plan.Every {
		out = append(out, at)
	}
	return append(out, last)
}

// soakLimits say how much drift counts as noise: the goroutines may move
// by a few dozen (HTTP workers come and go with the request rate) and the
// live heap by a fifth or 16 MiB, whichever is more (the store's page
// cache and per-tenant buffers settle at different times).
func goroutineNoise(sockets int) float64 { return 50 + 0.02*float64(sockets) }

func heapNoise(start float64) float64 { return max(0.2*start, 16<<20) }

// reportSoak turns the samples into report rows.
func reportSoak(rep *Report, sockets int, res *soakResult) {
	const s = ScenarioSoak
	if len(res.Samples) < 2 {
		rep.Add(s, "samples of the server", fmt.Sprintf("%d", len(res.Samples)), ">= 2", Fail)
		return
	}
	first, last := res.Samples[0], res.Samples[len(res.Samples)-1]
	at := func(x soakSample) string { return fmt.Sprintf("%.0fs", x.At.Seconds()) }
	span := fmt.Sprintf(" (at %s / %s)", at(first), at(last))
	rep.Add(s, "goroutines, first / last sample"+span,
		fmt.Sprintf("%.0f / %.0f (%+.0f)", first.Goroutines, last.Goroutines, last.Goroutines-first.Goroutines),
		fmt.Sprintf("growth <= %.0f", goroutineNoise(sockets)),
		atMost(last.Goroutines-first.Goroutines, goroutineNoise(sockets)))
	rep.Add(s, "Go heap live after GC, first / last sample",
		fmt.Sprintf("%s / %s (%s)", fmtBytes(first.HeapLive), fmtBytes(last.HeapLive), fmtDrift(first.HeapLive, last.HeapLive)),
		"growth <= "+fmtBytes(heapNoise(first.HeapLive)),
		atMost(last.HeapLive-first.HeapLive, heapNoise(first.HeapLive)))
	rep.Add(s, "  Go heap allocated, first / last sample",
		fmt.Sprintf("%s / %s (%s)", fmtBytes(first.HeapAlloc), fmtBytes(last.HeapAlloc), fmtDrift(first.HeapAlloc, last.HeapAlloc)), "", Info)
	rep.Add(s, "server RSS, first / last sample",
		fmt.Sprintf("%s / %s (%s)", fmtBytes(float64(first.RSS)), fmtBytes(float64(last.RSS)), fmtDrift(float64(first.RSS), float64(last.RSS))), "", Info)
	rep.Add(s, "  of which anonymous (heap, stacks)",
		fmt.Sprintf("%s / %s (%s)", fmtBytes(float64(first.Anon)), fmtBytes(float64(last.Anon)), fmtDrift(float64(first.Anon), float64(last.Anon))), "", Info)
	rep.Add(s, "  of which file-backed (the store's pages mapped in)",
		fmt.Sprintf("%s / %s (%s)", fmtBytes(float64(first.File)), fmtBytes(float64(last.File)), fmtDrift(float64(first.File), float64(last.File))), "", Info)
	if last.DBSize > 0 {
		rep.Add(s, "store file on disk, first / last sample",
			fmt.Sprintf("%s / %s (%s)", fmtBytes(float64(first.DBSize)), fmtBytes(float64(last.DBSize)), fmtDrift(float64(first.DBSize), float64(last.DBSize))), "", Info)
	}
	lo, hi := first, first
	for _, x := range res.Samples {
		if x.Goroutines < lo.Goroutines {
			lo = x
		}
		if x.Goroutines > hi.Goroutines {
			hi = x
		}
	}
	rep.Add(s, "  goroutines, lowest / highest sample", fmt.Sprintf("%.0f / %.0f", lo.Goroutines, hi.Goroutines), "", Info)
	rep.Add(s, "sockets open, first / last sample", fmt.Sprintf("%.0f / %.0f", first.Sockets, last.Sockets),
		fmt.Sprintf("%d", sockets), atLeast(min(first.Sockets, last.Sockets), float64(sockets)))
	rep.Add(s, "POST message answered, p50 / p99 / max",
		fmtDur(res.Post.Percentile(0.5))+" / "+fmtDur(res.Post.Percentile(0.99))+" / "+fmtDur(res.Post.Max()), "", Info)
	rep.Add(s, "  POST p99, first / last sampling interval", fmtDur(first.PostP99)+" / "+fmtDur(last.PostP99), "", Info)
	if res.Get.Count() > 0 {
		rep.Add(s, "GET conversations answered, p50 / p99 / max",
			fmtDur(res.Get.Percentile(0.5))+" / "+fmtDur(res.Get.Percentile(0.99))+" / "+fmtDur(res.Get.Max()), "", Info)
	}
	if n := res.SendFailed + res.ReadFailed; n > 0 {
		rep.Add(s, "failed calls (sends / reads)", fmt.Sprintf("%d / %d (first: %s)", res.SendFailed, res.ReadFailed, res.FirstErr), "0", Fail)
	}
	if res.LateMax > 50*time.Millisecond {
		rep.Add(s, "  the load tool fell behind its schedule by up to", fmtDur(res.LateMax), "", Info)
	}
}

// fmtDrift is the change from a to b, absolute and relative.
func fmtDrift(a, b float64) string {
	d := b - a
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	if a <= 0 {
		return sign + fmtBytes(d)
	}
	return fmt.Sprintf("%s%s, %s%.1f%%", sign, fmtBytes(d), sign, 100*d/a)
}

// soakTenant is one tenant of the soak: its agents' sessions (one socket
// each) and its conversations.
type soakTenant struct {
	*tenant
	tokens []string
	convs  []string
	head   uint64
}

func (r *runner) soak(ctx context.Context) error {
	c := r.cfg.Soak
	dir := filepath.Join(r.dir, "soak")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	srv, err := startServer(ctx, r.cfg.Exe, dir, r.logf)
	if err != nil {
		return err
	}
	defer srv.stop()
	a := newAPI(srv.base, srv.opToken, 256)
	defer a.close()

	r.logf("soak: setting up %d tenants, %d agents each, %d sessions in all", c.Tenants, c.Agents, c.Sockets)
	t0 := time.Now()
	tenants := make([]*soakTenant, c.Tenants)
	if err := parallel(ctx, c.Tenants, setupParallel/4, func(ctx context.Context, i int) error {
		t, err := a.createTenant(ctx, fmt.Sprintf("Soak %d", i))
		if err != nil {
			return err
		}
		st := &soakTenant{tenant: t}
		tenants[i] = st
		if t.ChannelID, err = a.createChannel(ctx, t, "demo", "Soak", nil); err != nil {
			return err
		}
		t.AgentKeys = make([]string, c.Agents)
		for j := range c.Agents {
			if t.AgentKeys[j], err = a.createAgent(ctx, t, j); err != nil {
				return err
			}
		}
		if err := a.inbound(ctx, t, 5, "Hi, where is my order?"); err != nil {
			return err
		}
		if st.convs, err = a.conversations(ctx, t); err != nil {
			return err
		}
		if len(st.convs) == 0 {
			return fmt.Errorf("tenant %s has no conversations", t.ID)
		}
		n := c.Sockets / c.Tenants
		if i < c.Sockets%c.Tenants {
			n++
		}
		st.tokens = make([]string, n)
		return nil
	}); err != nil {
		return fmt.Errorf("soak setup: %w", err)
	}
	type slot struct{ t, j int }
	var slots []slot
	for i, t := range tenants {
		for j := range t.tokens {
			slots = append(slots, slot{i, j})
		}
	}
	if err := parallel(ctx, len(slots), setupParallel, func(ctx context.Context, k int) error {
		t, j := tenants[slots[k].t], slots[k].j
		tok, err := a.signIn(ctx, t.AgentKeys[j%len(t.AgentKeys)], fmt.Sprintf("soak device %d", j))
		t.tokens[j] = tok
		return err
	}); err != nil {
		return fmt.Errorf("soak sign-in: %w", err)
	}
	for _, t := range tenants {
		if t.head, err = a.head(ctx, t.tenant); err != nil {
			return err
		}
	}
	r.logf("soak: setup took %.1fs", time.Since(t0).Seconds())

	var specs []socketSpec
	for _, t := range tenants {
		for _, tok := range t.tokens {
			specs = append(specs, socketSpec{Token: tok, Since: t.head})
		}
	}
	fl, err := newFleet(r.cfg.Exe, len(specs), r.cfg.PerWorker, r.workerDeadline(ctx), r.stderr)
	if err != nil {
		return err
	}
	defer fl.stop()
	env := &socketEnv{srv: srv, api: a, fleet: fl}
	r.logf("soak: connecting %d WebSockets", len(specs))
	st, err := fl.connect(ctx, "ws://"+srv.addr+"/api/v1/ws", specs, r.cfg.PerWorker, connectParallel)
	if err != nil {
		return err
	}
	if st.ConnectFailed > 0 {
		return fmt.Errorf("%d of %d sockets failed to connect; first error: %s", st.ConnectFailed, len(specs), st.FirstError)
	}
	if err := r.waitConnections(ctx, env, len(specs)); err != nil {
		return err
	}
	if err := fl.reset(ctx); err != nil {
		return err
	}

	plan := soakPlan{
		Duration: c.Duration, Every: c.Every, Rate: c.Rate, Reads: c.Reads, Workers: 64,
		Warm: min(30*time.Second, c.Duration/10),
	}
	var expected atomic.Uint64
	write := func(ctx context.Context, i int) error {
		t := tenants[i%len(tenants)]
		rng := rand.New(rand.NewPCG(uint64(i), 11))
		tok := t.tokens[rng.IntN(len(t.tokens))]
		conv := t.convs[(i/len(tenants))%len(t.convs)]
		if err := a.sendMessage(ctx, tok, conv, stampText(time.Now(), "soak message"), false); err != nil {
			return err
		}
		expected.Add(uint64(len(t.tokens)))
		return nil
	}
	read := func(ctx context.Context, i int) error {
		t := tenants[i%len(tenants)]
		return a.do(ctx, "GET", "/api/v1/conversations?limit=50", t.tokens[i%len(t.tokens)], nil, nil)
	}
	sample := func(ctx context.Context) (soakSample, error) {
		m, err := readProcMem(srv.pid)
		if err != nil {
			return soakSample{}, err
		}
		vals, err := a.metrics(ctx, "go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_heap_live_bytes", "onebox_websocket_connections")
		if err != nil {
			return soakSample{}, err
		}
		s := soakSample{RSS: m.RSS, Anon: m.Anon, File: m.File, Goroutines: vals[0], HeapAlloc: vals[1], HeapLive: vals[2], Sockets: vals[3]}
		if fi, err := os.Stat(filepath.Join(dir, "data", "onebox.db")); err == nil {
			s.DBSize = fi.Size()
		}
		r.logf("soak: RSS %s, heap live %s, %0.f goroutines, %0.f sockets",
			fmtBytes(float64(s.RSS)), fmtBytes(s.HeapLive), s.Goroutines, s.Sockets)
		return s, srv.alive()
	}
	r.logf("soak: %d messages/s and %d reads/s for %s, sampling every %s", c.Rate, c.Reads, c.Duration, c.Every)
	cpu0, _ := procCPU(srv.pid)
	res, err := runSoak(ctx, plan, write, read, sample)
	if err != nil {
		return err
	}
	cpu1, _ := procCPU(srv.pid)
	want := expected.Load()
	st, err = r.waitDelivered(ctx, env, func(s fleetStats) uint64 { return s.Stamped }, want, time.Minute)
	if err != nil {
		return err
	}

	const s = ScenarioSoak
	r.rep.Add(s, "traffic", fmt.Sprintf("%.0fs: %s sockets in %d tenants, %s messages (%d/s) and %s reads (%d/s)",
		res.Took.Seconds(), fmtCount(float64(len(specs))), len(tenants), fmtCount(float64(res.Sent)), c.Rate,
		fmtCount(float64(res.Read)), c.Reads), "", Info)
	reportSoak(r.rep, len(specs), res)
	r.rep.Add(s, "deliveries (each message to every socket of its tenant)",
		fmt.Sprintf("%s / %s", fmtCount(float64(st.Stamped)), fmtCount(float64(want))), "all", atLeast(float64(st.Stamped), float64(want)))
	r.rep.Add(s, "send start to arrival at each socket, p50 / p99 / max",
		fmtDur(st.send.Percentile(0.5))+" / "+fmtDur(st.send.Percentile(0.99))+" / "+fmtDur(st.send.Max()), "", Info)
	r.rep.Add(s, "order per socket: gaps / duplicates", fmt.Sprintf("%d / %d", st.Gaps, st.Dups), "0 / 0",
		atMost(float64(st.Gaps+st.Dups), 0))
	if len(st.Closes) > 0 {
		r.rep.Add(s, "sockets closed by the server", closedSummary(st.Closes), "none", Fail)
	}
	r.rep.Add(s, "server CPU during the traffic", fmt.Sprintf("%.0f%% of one core", 100*(cpu1-cpu0).Seconds()/res.Took.Seconds()), "", Info)
	r.rep.Note("soak: the first sample is taken %.0fs into the traffic (warm-up), the last just before it stops, both under the same load; RSS also counts the bbolt file's pages mapped into memory, which grow with the data written, so the drift checks are on goroutines and the live heap.", plan.Warm.Seconds())
	return nil
}

// metrics reads several unlabelled values from one scrape of /metrics.
func (a *api) metrics(ctx context.Context, names ...string) ([]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	out := make([]float64, len(names))
	for i, n := range names {
		if out[i], err = findMetric(bytes.NewReader(body), n); err != nil {
			return nil, err
		}
	}
	return out, nil
}
