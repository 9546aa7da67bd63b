package loadtest

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunSoakPacesAndSamples runs the soak loop for a moment against fakes:
// the writes and reads keep their rates, failures are counted, and the
// samples come after the warm-up, on the grid and just before the end.
func TestRunSoakPacesAndSamples(t *testing.T) {
	plan := soakPlan{Duration: 600 * time.Millisecond, Warm: 60 * time.Millisecond, Every: 150 * time.Millisecond,
		Rate: 200, Reads: 50, Workers: 8}
	var writes, reads atomic.Int64
	write := func(ctx context.Context, i int) error {
		writes.Add(1)
		if i%10 == 9 {
			return errors.New("refused")
		}
		time.Sleep(time.Millisecond) // the server's answer
		return nil
	}
	read := func(ctx context.Context, i int) error { reads.Add(1); return nil }
	var n atomic.Int64
	sample := func(ctx context.Context) (soakSample, error) {
		k := n.Add(1)
		return soakSample{Goroutines: float64(100 + k), HeapLive: 1 << 20, Sockets: 10}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := runSoak(ctx, plan, write, read, sample)
	if err != nil {
		t.Fatal(err)
	}
	if w := writes.Load(); w < 100 || w > 121 {
		t.Errorf("%d writes in 600 ms at 200/s, want about 120", w)
	}
	if r := reads.Load(); r < 25 || r > 31 {
		t.Errorf("%d reads in 600 ms at 50/s, want about 30", r)
	}
	if res.Sent+res.SendFailed != writes.Load() || res.SendFailed != writes.Load()/10 {
		t.Errorf("sent %d, failed %d of %d writes; every tenth fails", res.Sent, res.SendFailed, writes.Load())
	}
	if res.FirstErr != "refused" {
		t.Errorf("first error %q", res.FirstErr)
	}
	if res.Post.Count() != uint64(res.Sent) || res.Post.Percentile(0.5) < time.Millisecond {
		t.Errorf("POST histogram has %d values, p50 %s; want %d values of at least 1 ms", res.Post.Count(), res.Post.Percentile(0.5), res.Sent)
	}
	want := sampleTimes(plan)
	if len(res.Samples) != len(want) {
		t.Fatalf("%d samples, want %d at %v", len(res.Samples), len(want), want)
	}
	for i, s := range res.Samples {
		if s.At < want[i] || s.At > want[i]+100*time.Millisecond {
			t.Errorf("sample %d at %s, want %s", i, s.At, want[i])
		}
		if i > 0 && s.PostP99 <= 0 {
			t.Errorf("sample %d has no POST p99 of its interval", i)
		}
	}
	if res.Took < plan.Duration-20*time.Millisecond {
		t.Errorf("traffic stopped after %s, before %s", res.Took, plan.Duration)
	}
}

func TestSampleTimes(t *testing.T) {
	got := sampleTimes(soakPlan{Duration: 10 * time.Minute, Warm: 30 * time.Second, Every: 2 * time.Minute})
	want := []time.Duration{30 * time.Second, 150 * time.Second, 270 * time.Second, 390 * time.Second, 510 * time.Second, 594 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("sampleTimes = %v, want %v", got, want)
	}
	if got := sampleTimes(soakPlan{Duration: time.Second, Every: 5 * time.Second}); len(got) != 2 || got[0] != 0 {
		t.Errorf("a soak shorter than the sampling interval: %v, want the start and the end", got)
	}
}

func TestReportSoakJudgesDrift(t *testing.T) {
	steady := &soakResult{Post: new(Histogram), Get: new(Histogram), Samples: []soakSample{
		{Goroutines: 5100, HeapLive: 100 << 20, Sockets: 5000},
		{Goroutines: 5130, HeapLive: 110 << 20, Sockets: 5000},
	}}
	rep := &Report{}
	reportSoak(rep, 5000, steady)
	if rep.Failed() != 0 {
		t.Errorf("steady soak failed:\n%s", text(t, rep))
	}
	leaky := &soakResult{Post: new(Histogram), Get: new(Histogram), SendFailed: 1, FirstErr: "HTTP 500", Samples: []soakSample{
		{Goroutines: 5100, HeapLive: 100 << 20, Sockets: 5000},
		{Goroutines: 10100, HeapLive: 300 << 20, Sockets: 4990},
	}}
	rep = &Report{}
	reportSoak(rep, 5000, leaky)
	out := text(t, rep)
	for _, m := range []string{"goroutines, first / last", "heap live", "sockets open", "failed calls"} {
		if !failedRow(rep, m) {
			t.Errorf("row %q did not fail:\n%s", m, out)
		}
	}
	rep = &Report{}
	reportSoak(rep, 5000, &soakResult{Post: new(Histogram), Get: new(Histogram), Samples: steady.Samples[:1]})
	if rep.Failed() != 1 {
		t.Errorf("one sample is not a soak:\n%s", text(t, rep))
	}
}

func failedRow(rep *Report, measure string) bool {
	for _, r := range rep.Rows {
		if strings.Contains(r.Measure, measure) && r.Verdict == Fail {
			return true
		}
	}
	return false
}

func text(t *testing.T, rep *Report) string {
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestSoakFlags(t *testing.T) {
	f, err := ParseFlags([]string{"--soak", "2m", "--sockets", "100"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Scenarios, []string{ScenarioSoak}) || f.Soak.Duration != 2*time.Minute || f.Soak.Sockets != 100 {
		t.Errorf("-soak 2m -sockets 100: scenarios %v, soak %+v", f.Scenarios, f.Soak)
	}
	if f.Timeout != 12*time.Minute {
		t.Errorf("timeout %s, want the soak plus 10m of setup", f.Timeout)
	}
	f, err = ParseFlags([]string{"-scenario", "soak", "-timeout", "1h"}, io.Discard)
	if err != nil || f.Soak.Duration != 10*time.Minute || f.Timeout != time.Hour {
		t.Errorf("-scenario soak: %+v, %v", f.Config, err)
	}
	f, err = ParseFlags(nil, io.Discard)
	if err != nil || slices.Contains(f.Scenarios, ScenarioSoak) {
		t.Errorf("the default run includes the soak: %v, %v", f.Scenarios, err)
	}
	if _, err := ParseFlags([]string{"-soak", "1m", "-sockets", "10", "-soak-tenants", "20"}, io.Discard); err == nil {
		t.Error("fewer sockets than tenants accepted")
	}
}
