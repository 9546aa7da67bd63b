package loadtest

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	f, err := ParseFlags([]string{"-scenario", "fanout,idle", "-n", "2000", "-duration", "3s", "-timeout", "1m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Scenarios; len(got) != 2 || got[0] != ScenarioIdle || got[1] != ScenarioFanout {
		t.Errorf("Scenarios = %v, want [idle fanout]", got)
	}
	if f.Sockets != 2000 || f.Duration != 3*time.Second || f.Timeout != time.Minute || f.Worker {
		t.Errorf("parsed %+v", f)
	}
	if f.Writers != 64 || f.Rate != 1000 || f.Tenants != 100 || f.TenantAgents != 2000 || f.Events != 20 {
		t.Errorf("defaults are not the targets' conditions: %+v", f.Config)
	}
	w, err := ParseFlags([]string{"-worker", "-worker-deadline", "2m"}, io.Discard)
	if err != nil || !w.Worker || w.WorkerDeadline != 2*time.Minute {
		t.Errorf("worker flags = %+v, %v", w, err)
	}
	for _, bad := range [][]string{
		{"-scenario", "nope"},
		{"-n", "0"},
		{"-per-worker", "25000"},
		{"-timeout", "0s"},
		{"extra"},
	} {
		if _, err := ParseFlags(bad, io.Discard); err == nil {
			t.Errorf("ParseFlags(%q) accepted", bad)
		}
	}
	if _, err := ParseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h gives %v, want flag.ErrHelp", err)
	}
}
