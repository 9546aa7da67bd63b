package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ScaleConfig is the scale-out scenario: the same load on one OneBox
// process and on several sharing one PostgreSQL database and one NATS
// server, as an operator who outgrew one machine runs them. It needs both
// to be running already: the tool creates a tenant per phase and leaves
// them behind, so point it at a database made for the test.
type ScaleConfig struct {
	Store     string        // -store: postgres:// URL of the shared database
	NATS      string        // -nats: URL of the NATS server
	Processes int           // -processes: OneBox processes in the second phase
	Sockets   int           // -scale-sockets: sockets in each phase, spread over the processes
	Listeners int           // -scale-listeners: sockets measuring webhook-to-socket latency
	Rate      int           // -scale-rate: webhooks per second in the latency measurement
	Duration  time.Duration // -scale-duration: how long the latency measurement runs
}

func defaultScale() ScaleConfig {
	return ScaleConfig{Processes: 3, Sockets: 6000, Listeners: 200, Rate: 100, Duration: 10 * time.Second}
}

func (s *ScaleConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&s.Store, "store", s.Store, "scale: postgres:// URL of a database for the test, shared by the processes")
	fs.StringVar(&s.NATS, "nats", s.NATS, "scale: URL of the NATS server carrying events between the processes")
	fs.IntVar(&s.Processes, "processes", s.Processes, "scale: OneBox processes to compare with one")
	fs.IntVar(&s.Sockets, "scale-sockets", s.Sockets, "scale: WebSockets in each phase, spread evenly over the processes")
	fs.IntVar(&s.Listeners, "scale-listeners", s.Listeners, "scale: sockets timing webhooks that land on another process")
	fs.IntVar(&s.Rate, "scale-rate", s.Rate, "scale: signed webhooks per second while timing")
	fs.DurationVar(&s.Duration, "scale-duration", s.Duration, "scale: how long to time webhooks")
}

func (s *ScaleConfig) validate() error {
	switch {
	case !strings.HasPrefix(s.Store, "postgres://") && !strings.HasPrefix(s.Store, "postgresql://"):
		return errors.New("loadtest: the scale scenario needs -store postgres://... (a database for the test)")
	case s.NATS == "":
		return errors.New("loadtest: the scale scenario needs -nats nats://host:port")
	case s.Processes < 2:
		return errors.New("loadtest: -processes must be at least 2")
	case s.Sockets < s.Processes || s.Listeners < 1:
		return errors.New("loadtest: -scale-sockets must be at least -processes, -scale-listeners at least 1")
	case s.Rate <= 0 || s.Duration <= 0:
		return errors.New("loadtest: -scale-rate and -scale-duration must be positive")
	}
	return nil
}

// scalePhase is what one phase measured.
type scalePhase struct {
	procs      int
	held       int64  // sockets open after connecting
	refused    int64  // sockets that could not connect
	refusal    string // the first reason
	serverSeen float64
	burst      phaseResult
	rate       float64 // burst frames/s
	latency    fleetStats
	sent       int64
	want       uint64
	gaps, dups uint64
	closes     map[string]uint64
}

// scale runs the same load on one process and then on Processes.
func (r *runner) scale(ctx context.Context) error {
	c := r.cfg.Scale
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	shared := serverOpts{
		OpToken: "lt-" + randomHex(24),
		Env: []string{
			"ONEBOX_STORE=" + c.Store,
			"ONEBOX_NATS_URL=" + c.NATS,
			"ONEBOX_MEDIA_DIR=" + filepath.Join(r.dir, "scale-media"),
			// Every process seals channel secrets with the same key.
			"ONEBOX_SECRET_KEY=" + hex.EncodeToString(key),
			"ONEBOX_RATE_WEBHOOK=off",
		},
	}
	var phases []*scalePhase
	for _, procs := range []int{1, c.Processes} {
		ph, err := r.scaleRun(ctx, procs, shared)
		if err != nil {
			return fmt.Errorf("%d process(es): %w", procs, err)
		}
		phases = append(phases, ph)
	}
	r.scaleReport(phases)
	return nil
}

// scaleRun starts procs servers on the shared store and measures them.
func (r *runner) scaleRun(ctx context.Context, procs int, shared serverOpts) (*scalePhase, error) {
	c := r.cfg
	ph := &scalePhase{procs: procs, closes: map[string]uint64{}}
	var srvs []*serverProc
	defer func() {
		var wg sync.WaitGroup
		for _, s := range srvs {
			wg.Add(1)
			go func() { defer wg.Done(); s.stop() }()
		}
		wg.Wait()
	}()
	for i := range procs {
		dir := filepath.Join(r.dir, fmt.Sprintf("scale-%d", procs), fmt.Sprintf("process-%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		s, err := startServerWith(ctx, c.Exe, dir, shared, r.logf)
		if err != nil {
			return nil, err
		}
		srvs = append(srvs, s)
	}
	apis := make([]*api, procs)
	for i, s := range srvs {
		apis[i] = newAPI(s.base, s.opToken, 2*setupParallel)
		defer apis[i].close()
	}
	a := apis[0]

	// Two tenants: one whose sockets are dealt round-robin over the
	// processes for the fan-out, and one whose few sockets time webhooks
	// posted to the first process from the others (from the first, when it
	// is alone). The timing sockets connect first, so they are held even
	// when the fan-out asks one process for more sockets than it can open.
	lt, ltokens, err := r.scaleTenant(ctx, a, fmt.Sprintf("Scale %d latency", procs), c.Scale.Listeners)
	if err != nil {
		return nil, err
	}
	hooks := newAPI(srvs[0].base, srvs[0].opToken, 256)
	defer hooks.close()
	hooks.inboundMode.Store(inboundSMS)
	// The SMS channel and a first customer: after this, every webhook is a
	// new message in the timing tenant.
	if err := hooks.inbound(ctx, lt, 1, "warm-up"); err != nil {
		return nil, fmt.Errorf("first webhook: %w", err)
	}
	lhead, err := a.head(ctx, lt)
	if err != nil {
		return nil, err
	}
	lspecs := make([]socketSpec, len(ltokens))
	for i, tok := range ltokens {
		on := 0
		if procs > 1 {
			on = 1 + i%(procs-1)
		}
		lspecs[i] = socketSpec{Token: tok, Since: lhead, URL: "ws://" + srvs[on].addr + "/api/v1/ws"}
	}
	lfl, err := newFleet(c.Exe, len(lspecs), c.PerWorker, r.workerDeadline(ctx), r.stderr)
	if err != nil {
		return nil, err
	}
	defer lfl.stop()
	lst, err := lfl.connect(ctx, "", lspecs, c.PerWorker, connectParallel)
	if err != nil {
		return nil, err
	}
	if lst.ConnectFailed > 0 {
		return nil, fmt.Errorf("%d of %d timing sockets failed to connect; first error: %s", lst.ConnectFailed, len(lspecs), lst.FirstError)
	}

	t, tokens, err := r.scaleTenant(ctx, a, fmt.Sprintf("Scale %d fan-out", procs), c.Scale.Sockets)
	if err != nil {
		return nil, err
	}
	head, err := a.head(ctx, t)
	if err != nil {
		return nil, err
	}
	specs := make([]socketSpec, len(tokens))
	for i, tok := range tokens {
		specs[i] = socketSpec{Token: tok, Since: head, URL: "ws://" + srvs[i%procs].addr + "/api/v1/ws"}
	}
	fl, err := newFleet(c.Exe, len(specs), c.PerWorker, r.workerDeadline(ctx), r.stderr)
	if err != nil {
		return nil, err
	}
	defer fl.stop()
	r.logf("scale: %d process(es): connecting %d WebSockets", procs, len(specs))
	st, err := fl.connect(ctx, "", specs, c.PerWorker, connectParallel)
	if err != nil {
		return nil, err
	}
	// Sockets a process could not take are what this phase shows; the
	// rest is measured on those it holds.
	ph.held, ph.refused, ph.refusal = st.Open, st.ConnectFailed, st.FirstError
	if ph.held == 0 {
		return nil, fmt.Errorf("no socket connected; first error: %s", st.FirstError)
	}
	if ph.refused > 0 {
		r.logf("scale: %d process(es): %d sockets refused; first error: %s", procs, ph.refused, st.FirstError)
	}
	if ph.serverSeen, err = r.scaleConnections(ctx, apis, int(ph.held)+len(lspecs)); err != nil {
		return nil, err
	}
	env := &socketEnv{srv: srvs[0], api: a, t: t, fleet: fl}
	calls := (c.Events + 1) / 2 // a new customer's first message makes two events
	r.logf("scale: %d process(es): burst of %d events to %d sockets", procs, 2*calls, ph.held)
	ph.burst, err = r.fanoutPhase(ctx, env, func(ctx context.Context) error { return a.inbound(ctx, t, calls, "scale test message") })
	if err != nil {
		return nil, err
	}
	if span := time.Duration(ph.burst.st.MaxArrivalNS - ph.burst.st.MinAtNS); span > 0 {
		ph.rate = float64(ph.burst.st.Events) / span.Seconds()
	}
	ph.gaps, ph.dups = ph.burst.st.Gaps, ph.burst.st.Dups
	for k, v := range ph.burst.st.Closes {
		ph.closes[k] += v
	}

	if err := lfl.reset(ctx); err != nil {
		return nil, err
	}
	r.logf("scale: %d process(es): %d webhooks/s for %s to process 1, timed at %d sockets elsewhere", procs, c.Scale.Rate, c.Scale.Duration, len(lspecs))
	ph.sent, err = r.scaleWebhooks(ctx, hooks, lt)
	if err != nil {
		return nil, err
	}
	ph.want = uint64(ph.sent) * uint64(len(lspecs))
	lenv := &socketEnv{srv: srvs[0], api: a, t: lt, fleet: lfl}
	ph.latency, err = r.waitDelivered(ctx, lenv, func(s fleetStats) uint64 { return s.Stamped }, ph.want, time.Minute)
	if err != nil {
		return nil, err
	}
	ph.gaps += ph.latency.Gaps
	ph.dups += ph.latency.Dups
	for k, v := range ph.latency.Closes {
		ph.closes[k] += v
	}
	for _, s := range srvs {
		if err := s.alive(); err != nil {
			return nil, err
		}
	}
	return ph, nil
}

// scaleTenant makes a tenant with a demo channel and n signed-in sessions
// spread over up to Agents agents.
func (r *runner) scaleTenant(ctx context.Context, a *api, name string, n int) (*tenant, []string, error) {
	t, err := a.createTenant(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	agents := max(1, min(r.cfg.Agents, n))
	t.AgentKeys = make([]string, agents)
	if err := parallel(ctx, agents, setupParallel, func(ctx context.Context, i int) error {
		k, err := a.createAgent(ctx, t, i)
		t.AgentKeys[i] = k
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("create agents: %w", err)
	}
	if t.ChannelID, err = a.createChannel(ctx, t, "demo", "Scale test", nil); err != nil {
		return nil, nil, err
	}
	tokens := make([]string, n)
	if err := parallel(ctx, n, setupParallel, func(ctx context.Context, i int) error {
		tok, err := a.signIn(ctx, t.AgentKeys[i%agents], fmt.Sprintf("scale test device %d", i))
		tokens[i] = tok
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("sign in: %w", err)
	}
	return t, tokens, nil
}

// scaleConnections waits until the processes together count want live
// sockets, and returns their count.
func (r *runner) scaleConnections(ctx context.Context, apis []*api, want int) (float64, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		total := 0.0
		for _, a := range apis {
			n, err := a.metric(ctx, "onebox_websocket_connections")
			if err != nil {
				return 0, err
			}
			total += n
		}
		if int(total) >= want {
			return total, nil
		}
		if time.Now().After(deadline) {
			return total, fmt.Errorf("the processes count %.0f live sockets, want %d", total, want)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return total, err
		}
	}
}

// scaleWebhooks posts stamped signed webhooks at Rate for Duration, open
// loop, and returns how many were acknowledged.
func (r *runner) scaleWebhooks(ctx context.Context, hooks *api, t *tenant) (int64, error) {
	c := r.cfg.Scale
	interval := time.Second / time.Duration(c.Rate)
	total := int(c.Duration / interval)
	var sent atomic.Int64
	var firstErr atomic.Value
	jobs := make(chan int, 16)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if err := hooks.inbound(ctx, t, 1, stampText(time.Now(), "scale test webhook")); err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				sent.Add(1)
			}
		}()
	}
	begin := time.Now()
	for i := range total {
		if sleepCtx(ctx, time.Until(begin.Add(time.Duration(i)*interval))) != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return sent.Load(), fmt.Errorf("webhook: %w", err)
	}
	return sent.Load(), ctx.Err()
}

func (r *runner) scaleReport(phases []*scalePhase) {
	const s = ScenarioScale
	one, many := phases[0], phases[len(phases)-1]
	for _, ph := range phases {
		name := fmt.Sprintf("%d process", ph.procs)
		if ph.procs > 1 {
			name += "es"
		}
		heldTarget, heldStatus := "", Info
		if ph.procs > 1 {
			heldTarget, heldStatus = "all", atLeast(float64(ph.held), float64(r.cfg.Scale.Sockets))
		}
		r.rep.Add(s, fmt.Sprintf("%s: fan-out sockets held of %s asked (clients / servers' count)", name, fmtCount(float64(r.cfg.Scale.Sockets))),
			fmt.Sprintf("%s / %s", fmtCount(float64(ph.held)), fmtCount(ph.serverSeen-float64(r.cfg.Scale.Listeners))), heldTarget, heldStatus)
		if ph.refused > 0 {
			r.rep.Add(s, "  "+name+": sockets refused, first reason", fmt.Sprintf("%s: %.80s", fmtCount(float64(ph.refused)), ph.refusal), "", Info)
		}
		r.rep.Add(s, fmt.Sprintf("%s: burst of %d events, frames delivered", name, ph.burst.events),
			fmt.Sprintf("%s / %s", fmtCount(float64(ph.burst.st.Events)), fmtCount(float64(ph.burst.want))), "all",
			atLeast(float64(ph.burst.st.Events), float64(ph.burst.want)))
		r.rep.Add(s, name+": fan-out rate, first event created to last frame read", fmtCount(ph.rate)+" frames/s", "", Info)
		where := "a socket on the same process"
		if ph.procs > 1 {
			where = "a socket on another process"
		}
		p99 := ph.latency.send.Percentile(0.99)
		target, status := "", Info
		if ph.procs > 1 {
			target, status = "p99 <= "+targetMS(targetE2EP99), atMost(float64(p99), float64(targetE2EP99))
		}
		r.rep.Add(s, fmt.Sprintf("%s: webhook sent to arrival at %s, p50 / p99 / max", name, where),
			fmtDur(ph.latency.send.Percentile(0.5))+" / "+fmtDur(p99)+" / "+fmtDur(ph.latency.send.Max()), target, status)
		r.rep.Add(s, fmt.Sprintf("%s: webhooks deliveries", name),
			fmt.Sprintf("%s / %s (%d webhooks x %d sockets)", fmtCount(float64(ph.latency.Stamped)), fmtCount(float64(ph.want)), ph.sent, r.cfg.Scale.Listeners),
			"all", atLeast(float64(ph.latency.Stamped), float64(ph.want)))
		r.rep.Add(s, name+": order per socket: gaps / duplicates", fmt.Sprintf("%d / %d", ph.gaps, ph.dups), "0 / 0", atMost(float64(ph.gaps+ph.dups), 0))
		if len(ph.closes) > 0 {
			r.rep.Add(s, name+": sockets closed by a server", closedSummary(ph.closes), "none", Fail)
		}
	}
	if one.rate > 0 {
		r.rep.Add(s, fmt.Sprintf("fan-out rate, %d processes / 1", many.procs), fmt.Sprintf("%.2fx", many.rate/one.rate), "", Info)
	}
	r.rep.Note("scale: every process runs on the same machine as the others, the clients, PostgreSQL and NATS; the " +
		"figures compare one process with several under the same load, not with a machine each. Fan-out events are " +
		"new customers' first messages through the first process; webhooks are signed SMS deliveries to the first " +
		"process, timed from the moment each is sent to its arrival at each socket.")
}
