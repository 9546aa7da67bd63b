// Package loadtest is `onebox loadtest`: it starts a real OneBox server as a
// child process (the same binary), drives it over loopback through the
// public HTTP and WebSocket API with client sockets spread over worker
// processes, and prints the product's performance figures next to their
// targets. The ingest scenario runs in-process against the store and the
// inbox service. Everything it starts stops by itself.
package loadtest

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenarios, in the order they run.
const (
	ScenarioIngest = "ingest"
	ScenarioIdle   = "idle"
	ScenarioFanout = "fanout"
	ScenarioE2E    = "e2e"
	// ScenarioSoak runs only when asked for (-soak or -scenario soak):
	// it takes minutes, not seconds (soak.go).
	ScenarioSoak = "soak"
	// ScenarioScale also runs only when asked for: it needs a PostgreSQL
	// database and a NATS server (scale.go).
	ScenarioScale = "scale"
)

// How the e2e scenario's measured messages reach the server (-e2e-via).
const (
	// ViaWebhook: customers' messages, each its own signed delivery to the
	// tenant's SMS gateway webhook, the path of the product's target.
	ViaWebhook = "webhook"
	// ViaNotes: agents' internal notes through the REST API, for comparison
	// with the webhook path.
	ViaNotes = "notes"
	// ViaReplies: agents' replies to customers, which add outbox work and
	// status events to the load.
	ViaReplies = "replies"
)

var allScenarios = []string{ScenarioIngest, ScenarioIdle, ScenarioFanout, ScenarioE2E}

// Config is one run of the tool.
type Config struct {
	Exe       string   // the onebox binary to run as server and workers
	Scenarios []string // subset of allScenarios, run in that order

	Timeout   time.Duration // the whole run
	Duration  time.Duration // measuring time of ingest and e2e
	Sockets   int           // idle and fanout: sockets, all in one tenant
	Agents    int           // idle and fanout: agents the sockets belong to
	PerWorker int           // sockets per client process
	Hold      time.Duration // idle: how long connected sockets sit before RSS is read

	Writers    int    // ingest
	Contacts   int    // ingest
	CPUProfile string // ingest: where to write a CPU profile of the measured phase, if anywhere

	Events int // fanout: events per phase

	Rate          int    // e2e: messages per second
	Tenants       int    // e2e
	TenantAgents  int    // e2e: agents (one socket each) in all tenants
	Conversations int    // e2e: conversations (customers) per tenant
	Via           string // e2e: ViaWebhook, ViaNotes or ViaReplies

	Soak  SoakConfig  // soak.go
	Scale ScaleConfig // scale.go

	JSON    bool
	Keep    bool // keep the temp dir (server data and log)
	Verbose bool
}

// DefaultConfig has the product's target conditions.
func DefaultConfig() Config {
	return Config{
		Scenarios:     allScenarios,
		Timeout:       10 * time.Minute,
		Duration:      10 * time.Second,
		Sockets:       10000,
		Agents:        100,
		PerWorker:     5000,
		Hold:          10 * time.Second,
		Writers:       64,
		Contacts:      1000,
		Events:        20,
		Rate:          1000,
		Tenants:       100,
		TenantAgents:  2000,
		Conversations: 5,
		Via:           ViaWebhook,
		Soak:          defaultSoak(),
		Scale:         defaultScale(),
	}
}

// Flags are the command line of `onebox loadtest`.
type Flags struct {
	Config
	Worker         bool
	WorkerDeadline time.Duration
}

// ParseFlags reads the command line.
func ParseFlags(args []string, stderr io.Writer) (Flags, error) {
	f := Flags{Config: DefaultConfig()}
	c := &f.Config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenario", "all", "which to run: all (not soak or scale), or a comma list of ingest, idle, fanout, e2e, soak, scale")
	fs.IntVar(&c.Sockets, "n", c.Sockets, "idle, fanout: WebSockets to open (all one tenant)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "ingest, e2e: how long to measure")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "stop everything after this long, whatever happens")
	fs.IntVar(&c.Agents, "agents", c.Agents, "idle, fanout: agents the sockets belong to (each socket is its own sign-in)")
	fs.IntVar(&c.PerWorker, "per-worker", c.PerWorker, "sockets per client process (a process may hold at most ~19,000 sockets)")
	fs.DurationVar(&c.Hold, "hold", c.Hold, "idle: how long the connected sockets sit (heartbeats on) before memory is read")
	fs.IntVar(&c.Writers, "writers", c.Writers, "ingest: concurrent writers")
	fs.IntVar(&c.Contacts, "contacts", c.Contacts, "ingest: customers the messages come from")
	fs.StringVar(&c.CPUProfile, "cpuprofile", c.CPUProfile, "ingest: write a CPU profile of the measured phase to this file (read it with go tool pprof)")
	fs.IntVar(&c.Events, "events", c.Events, "fanout: events in each phase (a burst, then paced at 50,000 frames/s)")
	fs.IntVar(&c.Rate, "rate", c.Rate, "e2e: messages per second")
	fs.IntVar(&c.Tenants, "tenants", c.Tenants, "e2e: tenants")
	fs.IntVar(&c.TenantAgents, "e2e-agents", c.TenantAgents, "e2e: agents connected, spread evenly over the tenants")
	fs.IntVar(&c.Conversations, "conversations", c.Conversations, "e2e: conversations per tenant the messages go to, one customer each")
	fs.StringVar(&c.Via, "e2e-via", c.Via, "e2e: how the measured messages come in: webhook (customers' messages as signed SMS gateway deliveries), "+
		"notes (agents' internal notes) or replies (agents' replies to customers, adding outbox work and status events)")
	replies := false
	fs.BoolFunc("replies", "e2e: the same as -e2e-via replies", func(v string) (err error) {
		replies, err = strconv.ParseBool(v)
		return err
	})
	c.Soak.flags(fs)
	c.Scale.flags(fs)
	fs.BoolVar(&c.JSON, "json", c.JSON, "print the results as JSON instead of a table")
	fs.BoolVar(&c.Keep, "keep", c.Keep, "keep the temporary directory (server data and log)")
	fs.BoolVar(&c.Verbose, "v", c.Verbose, "more progress detail on stderr")
	fs.BoolVar(&f.Worker, "worker", false, "internal: run as a client worker process")
	fs.DurationVar(&f.WorkerDeadline, "worker-deadline", 15*time.Minute, "internal: worker's own time limit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: onebox loadtest [flags]

Starts a OneBox server on a free loopback port with a throw-away data
directory, loads it the way the product's performance targets describe,
prints each figure against its target, and stops. Scenarios:
  ingest  durable inbound messages/s into the store, 64 writers (in-process)
  idle    server memory per authenticated idle WebSocket, 10,000 sockets
  fanout  20 events to 10,000 sockets of one tenant, all at once (frames/s),
          then paced at 50,000 frames/s (latency from creation to arrival)
  e2e     1,000 messages/s across 100 tenants, 2,000 agents connected:
          latency from a customer's signed webhook delivery (or, with
          -e2e-via, an agent's note or reply) to its arrival at every socket
Only when named (-scenario):
  soak    minutes of steady traffic on thousands of sockets (also -soak)
  scale   one process, then -processes of them on one PostgreSQL (-store)
          and one NATS (-nats): sockets held, fan-out frames/s, and webhook
          to socket latency across processes
The exit status is 1 when a target was missed.

Flags:
`)
		fs.VisitAll(func(fl *flag.Flag) {
			if strings.HasPrefix(fl.Name, "worker") {
				return // internal
			}
			typ, usage := flag.UnquoteUsage(fl)
			if typ != "" {
				typ = " " + typ
			}
			fmt.Fprintf(fs.Output(), "  -%s%s\n    \t%s", fl.Name, typ, usage)
			if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" {
				fmt.Fprintf(fs.Output(), " (default %s)", fl.DefValue)
			}
			fmt.Fprintln(fs.Output())
		})
	}
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("loadtest: unexpected argument %q", fs.Arg(0))
	}
	if f.Worker {
		return f, nil
	}
	if err := c.applyReplies(fs, replies); err != nil {
		return f, err
	}
	s, err := parseScenarios(*scen)
	if err != nil {
		return f, err
	}
	c.Scenarios = s
	c.Soak.adjust(c, fs)
	return f, c.validate()
}

// applyReplies makes the older -replies flag mean -e2e-via replies, refusing
// a command line that asks for two different paths.
func (c *Config) applyReplies(fs *flag.FlagSet, replies bool) error {
	if !replies {
		return nil
	}
	viaSet := false
	fs.Visit(func(fl *flag.Flag) { viaSet = viaSet || fl.Name == "e2e-via" })
	if viaSet && c.Via != ViaReplies {
		return fmt.Errorf("loadtest: -replies contradicts -e2e-via %s", c.Via)
	}
	c.Via = ViaReplies
	return nil
}

func parseScenarios(s string) ([]string, error) {
	want := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(strings.ToLower(p))
		switch p {
		case "":
		case "all":
			for _, a := range allScenarios {
				want[a] = true
			}
		case ScenarioIngest, ScenarioIdle, ScenarioFanout, ScenarioE2E, ScenarioSoak, ScenarioScale:
			want[p] = true
		default:
			return nil, fmt.Errorf("loadtest: unknown scenario %q (want all, ingest, idle, fanout, e2e, soak or scale)", p)
		}
	}
	var out []string
	for _, a := range slices.Concat(allScenarios, []string{ScenarioSoak, ScenarioScale}) {
		if want[a] {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("loadtest: no scenario given")
	}
	return out, nil
}

func (c *Config) validate() error {
	switch {
	case c.Timeout <= 0:
		return errors.New("loadtest: -timeout must be positive")
	case c.Duration <= 0:
		return errors.New("loadtest: -duration must be positive")
	case c.Sockets <= 0 || c.Agents <= 0 || c.PerWorker <= 0:
		return errors.New("loadtest: -n, -agents and -per-worker must be positive")
	case c.PerWorker > 18000:
		return errors.New("loadtest: -per-worker above 18,000 would exceed a process's open-file limit")
	case c.Writers <= 0 || c.Contacts <= 0:
		return errors.New("loadtest: -writers and -contacts must be positive")
	case c.Events <= 0:
		return errors.New("loadtest: -events must be positive")
	case c.Rate <= 0 || c.Tenants <= 0 || c.TenantAgents < c.Tenants || c.Conversations <= 0:
		return errors.New("loadtest: -rate, -tenants and -conversations must be positive, and -e2e-agents at least -tenants")
	case c.Hold < 0:
		return errors.New("loadtest: -hold must not be negative")
	case c.Via != ViaWebhook && c.Via != ViaNotes && c.Via != ViaReplies:
		return fmt.Errorf("loadtest: unknown -e2e-via %q (want webhook, notes or replies)", c.Via)
	}
	if slices.Contains(c.Scenarios, ScenarioSoak) {
		if err := c.Soak.validate(); err != nil {
			return err
		}
	}
	if slices.Contains(c.Scenarios, ScenarioScale) {
		return c.Scale.validate()
	}
	return nil
}
