package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// api talks to the server under test over its public HTTP API.
type api struct {
	base    string
	opToken string
	hc      *http.Client

	// How conversations are made (see inbound): decided on first use.
	inboundMode atomic.Int32
}

const (
	inboundUnknown int32 = iota
	inboundOperator
	inboundSMS
	inboundNone
)

func newAPI(base, opToken string, conns int) *api {
	return &api{
		base:    base,
		opToken: opToken,
		hc: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil,
				MaxIdleConns:        conns,
				MaxIdleConnsPerHost: conns,
				IdleConnTimeout:     time.Minute,
				DisableCompression:  true,
			},
		},
	}
}

func (a *api) close() { a.hc.CloseIdleConnections() }

// apiError is a non-expected answer from the server.
type apiError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %.300s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// do sends body as JSON with the bearer token and decodes a 2xx answer into out.
func (a *api) do(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return a.send(req, out)
}

func (a *api) send(req *http.Request, out any) error {
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode, Body: string(b)}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", req.Method, req.URL.Path, err)
		}
	}
	return nil
}

type idObj struct {
	ID string `json:"id"`
}

// tenant is one organisation the tool set up, with what it needs to act in it.
type tenant struct {
	ID         string
	AdminToken string
	AgentKeys  []string // one access key per agent
	ChannelID  string   // demo channel

	mu        sync.Mutex
	smsID     string // SMS channel, when conversations come in by SMS webhook
	smsSecret string
	contacts  int
}

func (a *api) createTenant(ctx context.Context, name string) (*tenant, error) {
	var res struct {
		Tenant    idObj  `json:"tenant"`
		AccessKey string `json:"access_key"`
	}
	if err := a.do(ctx, "POST", "/api/v1/tenants", a.opToken, map[string]string{"name": name}, &res); err != nil {
		return nil, err
	}
	tok, err := a.signIn(ctx, res.AccessKey, "load test admin")
	if err != nil {
		return nil, err
	}
	return &tenant{ID: res.Tenant.ID, AdminToken: tok}, nil
}

func (a *api) signIn(ctx context.Context, key, device string) (string, error) {
	var res struct {
		Token string `json:"token"`
	}
	err := a.do(ctx, "POST", "/api/v1/session", "", map[string]any{
		"access_key": key,
		"device":     map[string]string{"name": device, "platform": "loadtest"},
	}, &res)
	if err == nil && res.Token == "" {
		err = errors.New("POST /api/v1/session: no token in the answer")
	}
	return res.Token, err
}

func (a *api) createAgent(ctx context.Context, t *tenant, i int) (string, error) {
	var res struct {
		AccessKey string `json:"access_key"`
	}
	err := a.do(ctx, "POST", "/api/v1/agents", t.AdminToken, map[string]string{
		"name":  "Load Agent " + strconv.Itoa(i),
		"email": fmt.Sprintf("agent%d@loadtest.invalid", i),
		"role":  "agent",
	}, &res)
	if err == nil && res.AccessKey == "" {
		err = errors.New("POST /api/v1/agents: no access_key in the answer")
	}
	return res.AccessKey, err
}

func (a *api) createChannel(ctx context.Context, t *tenant, typ, name string, cfg map[string]string) (string, error) {
	body := map[string]any{"type": typ, "name": name}
	if cfg != nil {
		body["config"] = cfg
	}
	var res struct {
		Channel idObj `json:"channel"`
	}
	if err := a.do(ctx, "POST", "/api/v1/channels", t.AdminToken, body, &res); err != nil {
		return "", err
	}
	return res.Channel.ID, nil
}

// head is the tenant's last event seq.
func (a *api) head(ctx context.Context, t *tenant) (uint64, error) {
	var res struct {
		Head uint64 `json:"head"`
	}
	err := a.do(ctx, "GET", "/api/v1/events?since=0&limit=1", t.AdminToken, nil, &res)
	return res.Head, err
}

// conversations lists up to 200 of the tenant's conversation ids.
func (a *api) conversations(ctx context.Context, t *tenant) ([]string, error) {
	var res struct {
		Conversations []idObj `json:"conversations"`
	}
	if err := a.do(ctx, "GET", "/api/v1/conversations?limit=200", t.AdminToken, nil, &res); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(res.Conversations))
	for _, c := range res.Conversations {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// sendMessage posts an agent's message (a private note unless reply) and
// returns when the server has answered.
func (a *api) sendMessage(ctx context.Context, token, conv, text string, reply bool) error {
	return a.do(ctx, "POST", "/api/v1/conversations/"+conv+"/messages", token, map[string]any{
		"client_id": uuid.NewString(),
		"text":      text,
		"private":   !reply,
	}, nil)
}

// customerPhone is the phone number of the tenant's k-th customer: the
// same k is the same contact, so a later message from it lands in the
// conversation its first one started.
func customerPhone(k int) string { return fmt.Sprintf("+1555%07d", k) }

// newCustomers makes n customers of t that did not write before, each with
// a first message carrying text.
func (t *tenant) newCustomers(n int, text string) []map[string]string {
	t.mu.Lock()
	first := t.contacts
	t.contacts += n
	t.mu.Unlock()
	msgs := make([]map[string]string, n)
	for i := range msgs {
		c := first + i
		msgs[i] = map[string]string{
			"external_id": "lt-" + t.ID + "-" + strconv.Itoa(c),
			"from":        customerPhone(c),
			"name":        "Customer " + strconv.Itoa(c),
			"text":        text,
		}
	}
	return msgs
}

// inbound brings n customer messages into the tenant, each from a new
// contact (so each starts a conversation), in one request when it can.
//
// The operator-only seeding endpoint POST /api/v1/operator/inbound
// {"channel_id","messages":[{"external_id","from","name","text"}]}, guarded
// by the operator token, takes them all at once into the demo channel, so
// it is tried first; if the server does not have it (404/405), the tool
// falls back to the SMS webhook of the contract, one signed delivery per
// message to an SMS channel it creates.
func (a *api) inbound(ctx context.Context, t *tenant, n int, text string) error {
	msgs := t.newCustomers(n, text)
	switch a.inboundMode.Load() {
	case inboundUnknown, inboundOperator:
		err := a.do(ctx, "POST", "/api/v1/operator/inbound", a.opToken,
			map[string]any{"channel_id": t.ChannelID, "messages": msgs}, nil)
		if st := statusOf(err); st != http.StatusNotFound && st != http.StatusMethodNotAllowed {
			if err == nil {
				a.inboundMode.Store(inboundOperator)
			}
			return err
		}
		a.inboundMode.CompareAndSwap(inboundUnknown, inboundSMS)
		return a.inboundSMS(ctx, t, msgs)
	case inboundSMS:
		return a.inboundSMS(ctx, t, msgs)
	default:
		return errNoInbound
	}
}

var errNoInbound = errors.New("cannot bring customer messages in: the server has neither the operator seeding " +
	"endpoint POST /api/v1/operator/inbound nor a working SMS webhook (POST /webhooks/sms/{channel_id})")

// inboundSMS delivers msgs through t's SMS webhook, one request each.
func (a *api) inboundSMS(ctx context.Context, t *tenant, msgs []map[string]string) error {
	id, secret, err := a.smsChannel(ctx, t)
	if err != nil {
		a.inboundMode.Store(inboundNone)
		return fmt.Errorf("%w (%v)", errNoInbound, err)
	}
	for _, m := range msgs {
		if err := a.postSMS(ctx, id, secret, m); err != nil {
			return err
		}
	}
	return nil
}

// customerSMS delivers one more message from t's k-th customer through the
// tenant's SMS webhook, as the gateway would: providerID is the gateway's
// message id, which the server stores once however often it is delivered.
func (a *api) customerSMS(ctx context.Context, t *tenant, k int, providerID, text string) error {
	id, secret, err := a.smsChannel(ctx, t)
	if err != nil {
		return err
	}
	return a.postSMS(ctx, id, secret, map[string]string{"external_id": providerID, "from": customerPhone(k), "text": text})
}

// smsChannel returns t's SMS channel and its webhook secret, creating the
// channel on first use. Its gateway is never called: the load only comes in.
func (a *api) smsChannel(ctx context.Context, t *tenant) (id, secret string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.smsID == "" {
		secret := randomHex(16)
		id, err := a.createChannel(ctx, t, "sms", "Load test SMS", map[string]string{
			"send_url":       "http://127.0.0.1:9/unused",
			"auth_token":     "unused",
			"webhook_secret": secret,
		})
		if err != nil {
			return "", "", fmt.Errorf("create SMS channel: %w", err)
		}
		t.smsID, t.smsSecret = id, secret
	}
	return t.smsID, t.smsSecret, nil
}

// postSMS signs one inbound message m ("external_id", "from", "text") the
// way the contract's SMS gateway does and posts it to channel id's webhook.
func (a *api) postSMS(ctx context.Context, id, secret string, m map[string]string) error {
	body, err := json.Marshal(map[string]any{
		"from": m["from"], "to": "+15550000000", "text": m["text"],
		"id": m["external_id"], "timestamp": time.Now().UTC().Format(time.RFC3339),
	})
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequestWithContext(ctx, "POST", a.base+"/webhooks/sms/"+id, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Onebox-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	if err := a.send(req, nil); err != nil {
		if st := statusOf(err); st == http.StatusNotImplemented || st == http.StatusNotFound {
			a.inboundMode.Store(inboundNone)
			return fmt.Errorf("%w (%v)", errNoInbound, err)
		}
		return err
	}
	return nil
}

// metric reads one unlabelled value from the server's /metrics.
func (a *api) metric(ctx context.Context, name string) (float64, error) {
	return a.scrape(ctx, func(r io.Reader) (float64, error) { return findMetric(r, name) })
}

// answered is how many method requests on the route template (e.g.
// "/webhooks/sms/:channel_id") the server has answered 2xx, by its own
// count: the _count of that route's latency histogram. It tells which
// path a load really took, whatever the tool believes it sent.
func (a *api) answered(ctx context.Context, method, route string) (float64, error) {
	return a.scrape(ctx, func(r io.Reader) (float64, error) {
		return sumMetric(r, "onebox_http_request_duration_seconds_count",
			`method="`+method+`"`, `route="`+route+`"`, `code="2xx"`)
	})
}

// scrape reads the server's /metrics with read.
func (a *api) scrape(ctx context.Context, read func(io.Reader) (float64, error)) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	v, err := read(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("GET /metrics: %w", err)
	}
	return v, nil
}

// sumMetric adds up the series of name whose labels include every one of
// labels (each `key="value"`); a series not yet observed counts as 0.
func sumMetric(r io.Reader, name string, labels ...string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sum := 0.0
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+"{")
		if !ok {
			continue
		}
		set, value, ok := strings.Cut(rest, "} ")
		if !ok || !hasLabels(set, labels) {
			continue
		}
		f := strings.Fields(value)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s{%s}: %w", name, set, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// hasLabels says whether the label set a="x",b="y" has every one of want.
func hasLabels(set string, want []string) bool {
	for _, l := range want {
		i := strings.Index(set, l)
		if i < 0 || (i > 0 && set[i-1] != ',') {
			return false
		}
	}
	return true
}

func findMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if rest != "" && rest[0] == '{' {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		return strconv.ParseFloat(f[0], 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("metric %s not found", name)
}
