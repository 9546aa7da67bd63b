package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestE2EViaFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // Via; "" means refused
	}{
		{nil, ViaWebhook},
		{[]string{"-e2e-via", "notes"}, ViaNotes},
		{[]string{"-e2e-via", "replies"}, ViaReplies},
		{[]string{"-replies"}, ViaReplies},
		{[]string{"-replies=false"}, ViaWebhook},
		{[]string{"-e2e-via", "replies", "-replies"}, ViaReplies},
		{[]string{"-e2e-via", "notes", "-replies"}, ""},
		{[]string{"-e2e-via", "sms"}, ""},
	} {
		f, err := ParseFlags(tc.args, io.Discard)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%q accepted: via %q", tc.args, f.Via)
		case tc.want != "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.want != "" && f.Via != tc.want:
			t.Errorf("%q: via %q, want %q", tc.args, f.Via, tc.want)
		}
	}
}

func TestSumMetric(t *testing.T) {
	const text = `# TYPE onebox_http_request_duration_seconds histogram
onebox_http_request_duration_seconds_bucket{method="POST",route="/webhooks/sms/:channel_id",code="2xx",le="0.01"} 7
onebox_http_request_duration_seconds_count{method="POST",route="/webhooks/sms/:channel_id",code="2xx"} 12
onebox_http_request_duration_seconds_count{method="POST",route="/webhooks/sms/:channel_id",code="4xx"} 3
onebox_http_request_duration_seconds_count{method="POST",route="/webhooks/sms/:channel_id/x",code="2xx"} 100
onebox_http_request_duration_seconds_count{method="GET",route="/webhooks/sms/:channel_id",code="2xx"} 100
onebox_http_request_duration_seconds_count{xmethod="POST",route="/webhooks/sms/:channel_id",code="2xx"} 100
`
	count := func(route string) float64 {
		t.Helper()
		v, err := sumMetric(strings.NewReader(text), "onebox_http_request_duration_seconds_count",
			`method="POST"`, `route="`+route+`"`, `code="2xx"`)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := count("/webhooks/sms/:channel_id"); got != 12 {
		t.Errorf("2xx POSTs on the SMS webhook = %v, want 12", got)
	}
	if got := count("/api/v1/conversations/:id/messages"); got != 0 {
		t.Errorf("a route never called = %v, want 0", got)
	}
}

// TestE2EDrivesSignedWebhooks runs the e2e scenario in small against the
// real binary: by default every message comes in as a signed SMS webhook
// delivery (the server's own count of webhook answers says so) and reaches
// every socket of its tenant, in order.
func TestE2EDrivesSignedWebhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the onebox binary")
	}
	exe := filepath.Join(t.TempDir(), "onebox")
	if out, err := exec.Command("go", "build", "-o", exe, "github.com/onebox/onebox/server").CombinedOutput(); err != nil {
		t.Fatalf("build onebox: %v\n%s", err, out)
	}
	cfg := DefaultConfig()
	cfg.Exe, cfg.Scenarios, cfg.JSON = exe, []string{ScenarioE2E}, true
	cfg.Rate, cfg.Duration, cfg.Timeout = 50, time.Second, 2*time.Minute
	cfg.Tenants, cfg.TenantAgents, cfg.Conversations, cfg.PerWorker = 2, 6, 3, 4 // two workers
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The workers write their stderr straight into the tool's.
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	// Latency on a busy test machine may miss its target; what this test
	// judges is the path and the counts.
	if err := Run(ctx, cfg, &stdout, stderr); err != nil && !errors.Is(err, ErrTargetsMissed) {
		t.Fatalf("Run: %v\n%s", err, stderr)
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	rows := map[string]Row{}
	for _, r := range rep.Rows {
		rows[strings.TrimSpace(r.Measure)] = r
	}
	// 2 s of warm-up and 1 s measured at 50/s.
	hooks, ok := rows["server's 2xx answers on POST /webhooks/sms/:channel_id"]
	if !ok || hooks.Verdict != Pass || !strings.HasPrefix(hooks.Value, "150 ") {
		t.Errorf("webhook answers row %+v; want 150 counted by the server, as many as sent\n%s", hooks, stdout.String())
	}
	for _, m := range []string{"deliveries (each message to every socket of its tenant)", "order per socket: gaps / duplicates"} {
		if r := rows[m]; r.Verdict != Pass {
			t.Errorf("%s: %+v", m, r)
		}
	}
	if r := rows["deliveries (each message to every socket of its tenant)"]; r.Value != "150 / 150" {
		t.Errorf("deliveries %q, want 50 messages x 3 sockets = 150", r.Value)
	}
	if r, ok := rows["failed sends"]; ok {
		t.Errorf("failed sends: %s", r.Value)
	}
	if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "webhook POST /webhooks/sms/{channel_id}") {
		t.Errorf("notes %q do not describe the webhook path", rep.Notes)
	}
}

// lockedBuffer is a bytes.Buffer several goroutines and processes' pipes
// may write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
