package whatsapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/channel/channeltest"
	"github.com/onebox/onebox/internal/channel/whatsapp"
	"github.com/onebox/onebox/internal/inbox"
)

// The benchmarks measure the whole inbound path of a WhatsApp message:
// a signed webhook over HTTP, signature check and parse, the durable
// write to bbolt (group commit, fsync), and the event's arrival on an
// agent's WebSocket. They run a real server in this process on loopback;
// the clients share the machine's CPUs with it.
//
//	go test -run '^$' -bench Webhook -benchtime 20000x ./internal/channel/whatsapp

// benchRig is a server with a WhatsApp channel and one agent socket.
type benchRig struct {
	env    *channeltest.Env
	ch     inbox.Channel
	client *http.Client
	url    string
	sock   *websocket.Conn

	mu      sync.Mutex
	arrived map[string]time.Time // wamid -> when its message.created came in
	want    int
	all     chan struct{}
	closed  error
	stopped bool
	resumes atomic.Int64 // reconnections after a 4008
}

func newBenchRig(b *testing.B, conns int) *benchRig {
	b.Helper()
	var commits, writes atomic.Int64
	var commitTime atomic.Int64
	b.Cleanup(func() {
		if n := commits.Load(); n > 0 {
			b.Logf("%d commits, %.1f writes each, %.1f ms each", n, float64(writes.Load())/float64(n), float64(commitTime.Load())/float64(n)/1e6)
		}
	})
	env := channeltest.Start(b, channeltest.Options{Quiet: true,
		OnCommit: func(d time.Duration, n int) { commits.Add(1); writes.Add(int64(n)); commitTime.Add(int64(d)) },
		Webhooks: func(d channeltest.Deps) map[string]channel.Webhook {
			return map[string]channel.Webhook{inbox.ChannelWhatsApp: whatsapp.NewWebhook(whatsapp.WebhookConfig{Inbox: d.Svc, Logger: d.Log})}
		}})
	ch := env.CreateChannel(inbox.ChannelWhatsApp, map[string]string{
		"phone_number_id": "106540352242922", "access_token": "t", "app_secret": "app-secret-1", "verify_token": "v",
	})
	r := &benchRig{env: env, ch: ch, url: env.URL + "/webhooks/whatsapp/" + ch.ID, arrived: map[string]time.Time{}}
	r.client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns}}
	b.Cleanup(r.client.CloseIdleConnections)
	r.connect(b)
	return r
}

// connect opens the agent's socket and reads it in the background,
// noting when each inbound message's event arrives. Like the app, it
// resumes from the last seq it saw when the server closes it as a slow
// consumer (4008): the benchmark's client shares the CPUs with the server.
func (r *benchRig) connect(b *testing.B) {
	c := r.dial(b, r.env.Head())
	b.Cleanup(func() {
		r.mu.Lock()
		sock := r.sock
		r.stopped = true
		r.mu.Unlock()
		sock.Close(websocket.StatusNormalClosure, "")
	})
	go r.read(b, c)
}

// dial connects and waits for the welcome. The server may close the
// socket as a slow consumer before the welcome too, when the backlog to
// replay outruns the client; like the app, it then simply tries again.
func (r *benchRig) dial(b *testing.B, since uint64) *websocket.Conn {
	for range 50 {
		c, slow := r.dialOnce(b, since)
		if !slow {
			return c
		}
		r.resumes.Add(1)
	}
	b.Errorf("closed as a slow consumer before the welcome 50 times in a row")
	return nil
}

func (r *benchRig) dialOnce(b *testing.B, since uint64) (_ *websocket.Conn, slow bool) {
	ctx, cancel := context.WithTimeout(context.Background(), channeltest.Wait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, strings.Replace(r.env.URL, "http", "ws", 1)+"/api/v1/ws", nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		b.Errorf("dial: %v", err)
		return nil, false
	}
	c.SetReadLimit(16 << 20)
	hello, _ := json.Marshal(map[string]any{"type": "hello", "token": r.env.AdminToken, "since": since})
	if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
		b.Errorf("hello: %v", err)
		return nil, false
	}
	_, msg, err := c.Read(ctx)
	if websocket.CloseStatus(err) == 4008 {
		return nil, true
	}
	if err != nil || !bytes.Contains(msg, []byte(`"welcome"`)) {
		b.Errorf("welcome: %s %v", msg, err)
		return nil, false
	}
	r.mu.Lock()
	r.sock = c
	r.mu.Unlock()
	return c, false
}

var (
	created = []byte(`"type":"message.created"`)
	extKey  = []byte(`"external_id":"`)
	seqKey  = []byte(`"seq":`)
)

func (r *benchRig) read(b *testing.B, c *websocket.Conn) {
	var last uint64
	for c != nil {
		_, msg, err := c.Read(context.Background())
		now := time.Now()
		if err != nil {
			r.mu.Lock()
			stopped := r.stopped
			r.mu.Unlock()
			if !stopped && websocket.CloseStatus(err) == 4008 {
				r.resumes.Add(1)
				c = r.dial(b, last)
				continue
			}
			r.mu.Lock()
			r.closed = err
			if r.all != nil {
				close(r.all)
				r.all = nil
			}
			r.mu.Unlock()
			return
		}
		// A light scan rather than a JSON decode: the reader must keep up.
		if i := bytes.Index(msg, seqKey); i >= 0 {
			var n uint64
			for _, d := range msg[i+len(seqKey):] {
				if d < '0' || d > '9' {
					break
				}
				n = n*10 + uint64(d-'0')
			}
			last = n
		}
		if !bytes.Contains(msg, created) {
			continue
		}
		i := bytes.Index(msg, extKey)
		if i < 0 {
			continue
		}
		rest := msg[i+len(extKey):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			continue
		}
		r.mu.Lock()
		r.arrived[string(rest[:j])] = now
		if r.all != nil && len(r.arrived) >= r.want {
			close(r.all)
			r.all = nil
		}
		r.mu.Unlock()
	}
}

// expect resets the arrivals and returns a channel closed once n have come.
func (r *benchRig) expect(n int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.arrived = make(map[string]time.Time, n)
	r.want = n
	r.all = make(chan struct{})
	return r.all
}

// body is one Meta delivery: a text message from one of 1,000 customers.
func body(run string, i int) (string, []byte) {
	wamid := fmt.Sprintf("wamid.%s.%d", run, i)
	b := fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Customer %d"},"wa_id":"1650555%04d"}],"messages":[{"from":"1650555%04d","id":%q,"timestamp":"1749416383","text":{"body":"Hello, where is my order %d?"},"type":"text"}]},"field":"messages"}]}]}`,
		i%1000, i%1000, i%1000, wamid, i)
	return wamid, b
}

func (r *benchRig) post(b []byte) error {
	req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(whatsapp.SignatureHeader, whatsapp.Sign("app-secret-1", b))
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}

func (r *benchRig) wait(b *testing.B, done <-chan struct{}, n int) {
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.arrived) < n {
		b.Fatalf("%d of %d messages reached the socket (socket error: %v)", len(r.arrived), n, r.closed)
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

var runs atomic.Int64

// BenchmarkWebhookThroughput posts b.N signed webhooks from 64 concurrent
// connections and reports how many per second went from the first POST
// to their events' arrival on the socket.
func BenchmarkWebhookThroughput(b *testing.B) {
	const conns = 512
	r := newBenchRig(b, conns)
	run := fmt.Sprint("t", runs.Add(1))
	bodies := make([][]byte, b.N)
	for i := range bodies {
		_, bodies[i] = body(run, i)
	}
	done := r.expect(b.N)
	var next atomic.Int64
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := r.post(bodies[i]); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	r.wait(b, done, b.N)
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "webhooks/s")
	b.ReportMetric(float64(r.resumes.Load()), "resumes")
}

// BenchmarkWebhookLatency1000 posts b.N webhooks at a steady 1,000 a
// second and reports percentiles of the time from sending each to its
// event's arrival on the socket.
func BenchmarkWebhookLatency1000(b *testing.B) {
	const rate = 1000
	r := newBenchRig(b, 256)
	run := fmt.Sprint("l", runs.Add(1))
	type item struct {
		wamid string
		body  []byte
	}
	items := make([]item, b.N)
	for i := range items {
		items[i].wamid, items[i].body = body(run, i)
	}
	sent := make([]time.Time, b.N)
	done := r.expect(b.N)
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	// Open loop: each webhook leaves at its time whatever the server is
	// doing, so a slow server shows up as latency, not as a lower rate.
	// Times are absolute, so a late start is caught up rather than lost.
	for i := range items {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sent[i] = time.Now()
			if err := r.post(items[i].body); err != nil {
				failed.Store(err)
			}
		}(i)
	}
	offered := time.Since(start)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	r.wait(b, done, b.N)
	b.StopTimer()
	r.mu.Lock()
	lat := make([]time.Duration, 0, b.N)
	for i, it := range items {
		lat = append(lat, r.arrived[it.wamid].Sub(sent[i]))
	}
	r.mu.Unlock()
	b.ReportMetric(float64(b.N)/offered.Seconds(), "offered/s")
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(percentile(lat, 1).Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(r.resumes.Load()), "resumes")
}
