package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// e2eTenant is a tenant of the e2e scenario: its agents' sessions (one
// socket each), the conversations messages go to and the customers, one
// per conversation, they come from.
type e2eTenant struct {
	*tenant
	tokens    []string
	convs     []string
	customers int
	head      uint64
}

const e2eWarmup = 2 * time.Second

func (r *runner) e2e(ctx context.Context) error {
	c := r.cfg
	dir := filepath.Join(r.dir, "e2e")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	srv, err := startServer(ctx, c.Exe, dir, r.logf)
	if err != nil {
		return err
	}
	defer srv.stop()
	a := newAPI(srv.base, srv.opToken, 512)
	defer a.close()

	// Tenants, each with its share of the agents and a few customer
	// conversations. With -e2e-via webhook the customers' first messages
	// come in by the same SMS webhook as the measured ones, so those land
	// in conversations that exist; agents' notes and replies go to
	// conversations of a demo channel.
	if c.Via == ViaWebhook {
		a.inboundMode.Store(inboundSMS)
	}
	r.logf("e2e: setting up %d tenants with %d agents in all", c.Tenants, c.TenantAgents)
	t0 := time.Now()
	tenants := make([]*e2eTenant, c.Tenants)
	var setupOnce sync.Once
	if err := parallel(ctx, c.Tenants, setupParallel/4, func(ctx context.Context, i int) error {
		t, err := a.createTenant(ctx, fmt.Sprintf("Load test %d", i))
		if err != nil {
			return err
		}
		et := &e2eTenant{tenant: t}
		tenants[i] = et
		agents := c.TenantAgents / c.Tenants
		if i < c.TenantAgents%c.Tenants {
			agents++
		}
		if c.Via != ViaWebhook {
			if t.ChannelID, err = a.createChannel(ctx, t, "demo", "Load test", nil); err != nil {
				return err
			}
		}
		et.tokens = make([]string, agents)
		for j := range agents {
			key, err := a.createAgent(ctx, t, j)
			if err != nil {
				return err
			}
			if et.tokens[j], err = a.signIn(ctx, key, "load test"); err != nil {
				return err
			}
		}
		if err := a.inbound(ctx, t, c.Conversations, "Hi, where is my order?"); err != nil {
			return err
		}
		et.customers = c.Conversations
		setupOnce.Do(func() { r.debugf("e2e: conversations come in by %s", a.inboundName()) })
		if et.convs, err = a.conversations(ctx, t); err != nil {
			return err
		}
		if len(et.convs) == 0 {
			return fmt.Errorf("tenant %s has no conversations after bringing %d customer messages in", t.ID, c.Conversations)
		}
		et.head, err = a.head(ctx, t)
		return err
	}); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	r.logf("e2e: setup took %.1fs", time.Since(t0).Seconds())

	var specs []socketSpec
	perTenant := make([]uint64, len(tenants)) // sockets of each tenant
	for i, t := range tenants {
		for _, tok := range t.tokens {
			specs = append(specs, socketSpec{Token: tok, Since: t.head})
		}
		perTenant[i] = uint64(len(t.tokens))
	}
	fl, err := newFleet(c.Exe, len(specs), c.PerWorker, r.workerDeadline(ctx), r.stderr)
	if err != nil {
		return err
	}
	defer fl.stop()
	env := &socketEnv{srv: srv, api: a, fleet: fl}
	r.logf("e2e: connecting %d WebSockets", len(specs))
	st, err := fl.connect(ctx, "ws://"+srv.addr+"/api/v1/ws", specs, c.PerWorker, connectParallel)
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

	// Send at a steady rate (open loop: each message has its slot in time,
	// whether or not earlier ones were answered). The first e2eWarmup of
	// messages carry no stamp, so they are not measured.
	interval := time.Second / time.Duration(c.Rate)
	warm := int(e2eWarmup / interval)
	total := warm + int(c.Duration/interval)
	path := e2ePaths[c.Via]
	r.logf("e2e: %d messages/s for %s (+%s warm-up) as %s", c.Rate, c.Duration, e2eWarmup, path.kind)
	answered0, answeredErr := a.answered(ctx, "POST", path.route)
	var (
		sent, failed atomic.Int64
		accepted     atomic.Int64 // sends answered 2xx, warm-up included
		expected     atomic.Uint64
		lateMax      atomic.Int64 // how far a send started after its slot, ns
		first, last  atomic.Int64 // measured sends' start times, unix ns
		firstErr     atomic.Value
		httpHist     Histogram
	)
	// Few jobs wait: when every sender is busy the schedule slips, and that
	// shows in the rate and in "fell behind" instead of piling up here.
	jobs := make(chan int, 16)
	begin := time.Now().Add(50 * time.Millisecond)
	var wg sync.WaitGroup
	for w := range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range jobs {
				ti := i % len(tenants)
				start := time.Now()
				text := "warm-up message"
				if i >= warm {
					text = stampText(start, "load test message")
					casMax(&lateMax, int64(start.Sub(begin.Add(time.Duration(i)*interval))))
					casMin(&first, start.UnixNano())
					casMax(&last, start.UnixNano())
				}
				err := a.e2eSend(ctx, c.Via, tenants[ti], i/len(tenants), rng, text)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				accepted.Add(1)
				if i >= warm {
					httpHist.Record(time.Since(start))
					sent.Add(1)
					expected.Add(perTenant[ti])
				}
			}
		}()
	}
	cpu0, _ := procCPU(srv.pid)
	self0 := selfCPU()
pace:
	for i := range total {
		if sleepCtx(ctx, time.Until(begin.Add(time.Duration(i)*interval))) != nil {
			break
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			break pace
		}
	}
	close(jobs)
	wg.Wait()
	cpu1, _ := procCPU(srv.pid)
	self1 := selfCPU()
	if err := ctx.Err(); err != nil {
		return err
	}
	answered1, err := a.answered(ctx, "POST", path.route)
	answeredErr = errors.Join(answeredErr, err)
	want := expected.Load()
	st, err = r.waitDelivered(ctx, env, func(s fleetStats) uint64 { return s.Stamped }, want, time.Minute)
	if err != nil {
		return err
	}

	const s = ScenarioE2E
	// The rate at which sends started: on schedule it is exactly c.Rate.
	startSpan := time.Duration(last.Load()-first.Load()) + interval
	rate := float64(sent.Load()) / startSpan.Seconds()
	r.rep.Add(s, fmt.Sprintf("messages/s sent (%d tenants, %s agents connected)", len(tenants), fmtCount(float64(len(specs)))),
		fmt.Sprintf("%s/s (%s in %.1fs)", fmtCount(rate), fmtCount(float64(sent.Load())), startSpan.Seconds()),
		">= "+fmtCount(float64(c.Rate))+"/s", atLeast(rate, float64(c.Rate)*rateTolerance))
	r.rep.Add(s, "deliveries (each message to every socket of its tenant)",
		fmt.Sprintf("%s / %s", fmtCount(float64(st.Stamped)), fmtCount(float64(want))), "all", atLeast(float64(st.Stamped), float64(want)))
	p99 := st.send.Percentile(0.99)
	r.rep.Add(s, "send start to arrival at each socket, p50 / p99 / max",
		fmtDur(st.send.Percentile(0.5))+" / "+fmtDur(p99)+" / "+fmtDur(st.send.Max()),
		"p99 <= "+targetMS(targetE2EP99), atMost(float64(p99), float64(targetE2EP99)))
	r.rep.Add(s, "  "+path.answer+" answered (stored, fsynced), p50 / p99",
		fmtDur(httpHist.Percentile(0.5))+" / "+fmtDur(httpHist.Percentile(0.99)), "", Info)
	r.rep.Add(s, "  event created to arrival, p50 / p99",
		fmtDur(st.at.Percentile(0.5))+" / "+fmtDur(st.at.Percentile(0.99)), "", Info)
	if n := failed.Load(); n > 0 {
		r.rep.Add(s, "failed sends", fmt.Sprintf("%d (first: %v)", n, firstErr.Load()), "0", Fail)
	}
	r.reportAnswered(path, answered1-answered0, accepted.Load(), answeredErr)
	r.rep.Add(s, "order per socket: gaps / duplicates", fmt.Sprintf("%d / %d", st.Gaps, st.Dups), "0 / 0",
		atMost(float64(st.Gaps+st.Dups), 0))
	if len(st.Closes) > 0 {
		r.rep.Add(s, "sockets closed by the server", closedSummary(st.Closes), "none", Fail)
	}
	if l := time.Duration(lateMax.Load()); l > 10*time.Millisecond {
		r.rep.Add(s, "sender fell behind its schedule by up to", fmtDur(l), "", Info)
	}
	busy := time.Since(begin).Seconds()
	r.rep.Add(s, "CPU while sending: server / load tool's sender",
		fmt.Sprintf("%.0f%% / %.0f%% of one core", 100*(cpu1-cpu0).Seconds()/busy, 100*(self1-self0).Seconds()/busy), "", Info)
	r.rep.Add(s, "client workers' CPU since they started", fmt.Sprintf("%.1f s", st.CPUSeconds), "", Info)
	if c.Via == ViaWebhook {
		r.rep.Note("e2e: each message is a customer's SMS, one signed delivery with its own provider message id to "+
			"its tenant's SMS gateway webhook POST /webhooks/sms/{channel_id}, from one of the tenant's %d customers "+
			"whose conversations the same webhook started; each makes a message.created (and a conversation.updated) "+
			"event for every socket of its tenant. Latency runs from just before the webhook POST to the frame's "+
			"arrival, on one clock. -e2e-via notes or replies sends agents' messages instead, for comparison.", c.Conversations)
	} else {
		r.rep.Note("e2e: the messages are %s, each a message.created (and a conversation.updated) event for every "+
			"socket of its tenant; latency runs from just before the POST to the frame's arrival, on one clock. "+
			"Conversations were brought in by %s. The default, -e2e-via webhook, sends customers' messages through "+
			"the SMS webhook instead.", path.kind, a.inboundName())
	}
	return nil
}

// e2ePath is how the measured messages of one -e2e-via reach the server.
type e2ePath struct {
	kind   string // what the messages are, for progress and the note
	route  string // the server's route template, as its metrics name it
	answer string // what answers each send, for the report
}

var e2ePaths = map[string]e2ePath{
	ViaWebhook: {"customers' SMS through their tenants' signed gateway webhook", "/webhooks/sms/:channel_id", "webhook"},
	ViaNotes:   {"agents' internal notes sent with POST /api/v1/conversations/{id}/messages", "/api/v1/conversations/:id/messages", "POST"},
	ViaReplies: {"agents' replies to customers sent with POST /api/v1/conversations/{id}/messages", "/api/v1/conversations/:id/messages", "POST"},
}

// e2eSend sends the tenant's n-th message of the run with text, by via.
// Through the webhook it comes from the tenant's customers in turn, each
// delivery with its own provider message id (a repeated id would be stored
// once and never arrive); otherwise a random agent of the tenant writes it
// in the conversations in turn.
func (a *api) e2eSend(ctx context.Context, via string, t *e2eTenant, n int, rng *rand.Rand, text string) error {
	if via == ViaWebhook {
		return a.customerSMS(ctx, t.tenant, n%t.customers, fmt.Sprintf("lt-%s-m%d", t.ID, n), text)
	}
	tok := t.tokens[rng.IntN(len(t.tokens))]
	return a.sendMessage(ctx, tok, t.convs[n%len(t.convs)], text, via == ViaReplies)
}

// reportAnswered checks the server's own count of the sends' route against
// the sends the tool saw accepted: it shows the load took the path it
// claims, each send answered once.
func (r *runner) reportAnswered(path e2ePath, counted float64, accepted int64, err error) {
	measure := "  server's 2xx answers on POST " + path.route
	if err != nil {
		r.rep.Add(ScenarioE2E, measure, "unknown: "+err.Error(), "", Info)
		return
	}
	v := atLeast(counted, float64(accepted))
	if v == Pass {
		v = atMost(counted, float64(accepted))
	}
	r.rep.Add(ScenarioE2E, measure, fmt.Sprintf("%s (sends accepted: %s)", fmtCount(counted), fmtCount(float64(accepted))),
		"= sends", v)
}

// inboundName says how customer messages were brought in.
func (a *api) inboundName() string {
	switch a.inboundMode.Load() {
	case inboundOperator:
		return "the operator seeding endpoint POST /api/v1/operator/inbound"
	case inboundSMS:
		return "the SMS webhook"
	default:
		return "nothing (unavailable)"
	}
}
