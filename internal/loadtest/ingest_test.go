package loadtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIngestSmoke runs the ingest scenario for a moment with small numbers.
func TestIngestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	profile := filepath.Join(dir, "cpu.pprof")
	res, err := runIngest(ctx, dir, 4, 20, time.Second, profile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("CPU profile: %v (stat error %v); want a written profile", fi, err)
	}
	if res.Rate <= 0 || res.Messages <= 0 {
		t.Fatalf("rate %v with %d messages; want a positive rate", res.Rate, res.Messages)
	}
	if res.Errors != 0 {
		t.Errorf("%d failed Receive calls, first: %v", res.Errors, res.FirstErr)
	}
	if res.Receive.Count() != uint64(res.Messages) {
		t.Errorf("Receive latencies recorded %d, messages %d", res.Receive.Count(), res.Messages)
	}
	if res.Commits <= 0 || res.Commit.Percentile(0.99) <= 0 {
		t.Errorf("commits %d, commit p99 %v; want both positive", res.Commits, res.Commit.Percentile(0.99))
	}
	t.Logf("%.0f msgs/s, Receive p99 %v, commit p99 %v, %.1f per commit", res.Rate,
		res.Receive.Percentile(0.99), res.Commit.Percentile(0.99), res.PerCommit)
}
