package loadtest

import (
	"strings"
	"testing"
)

func TestParseProcStatus(t *testing.T) {
	m, err := parseProcStatus([]byte("Name:\tonebox\nVmRSS:\t  20480 kB\nRssAnon:\t   16384 kB\nRssFile:\t    4096 kB\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m != (procMem{RSS: 20 << 20, Anon: 16 << 20, File: 4 << 20}) {
		t.Errorf("parseProcStatus = %+v", m)
	}
	if _, err := parseProcStatus([]byte("Name:\tx\n")); err == nil {
		t.Error("no error without VmRSS")
	}
	if _, err := readProcMem(0); err != nil {
		t.Logf("readProcMem(self): %v (not Linux?)", err)
	}
}

func TestParseGCTrace(t *testing.T) {
	log := `time=... level=WARN msg=x
gc 1 @0.010s 1%: 0.010+0.5+0.003 ms clock, 0.02+0.1/0.2/0.3+0.006 ms cpu, 3->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 2 @5.000s 1%: 0.010+0.5+0.003 ms clock, 0.02+0.1/0.2/0.3+0.006 ms cpu, 150->160->95 MB, 190 MB goal, 0 MB stacks, 0 MB globals, 2 P
`
	got, err := parseGCTrace([]byte(log))
	want := gcStat{N: 2, Live: 95 << 20, Goal: 190 << 20, Stacks: 0}
	if err != nil || got != want {
		t.Errorf("parseGCTrace = %+v, %v; want %+v", got, err, want)
	}
	old := "gc 3 @1.0s 0%: 0.1+0.2+0.003 ms clock, 0.2+0/0.1/0+0.006 ms cpu, 12->13->7 MB, 14 MB goal, 2 P\n"
	got, err = parseGCTrace([]byte(old))
	if want := (gcStat{N: 1, Live: 7 << 20, Goal: 14 << 20, Stacks: -1}); err != nil || got != want {
		t.Errorf("parseGCTrace(no stacks) = %+v, %v; want %+v", got, err, want)
	}
	if _, err := parseGCTrace([]byte("nothing")); err == nil {
		t.Error("no error without gc lines")
	}
}

func TestFindMetric(t *testing.T) {
	text := `# HELP onebox_websocket_connections Live WebSocket connections.
# TYPE onebox_websocket_connections gauge
onebox_websocket_connections_total 3
onebox_websocket_connections 10000
onebox_http_requests_total{route="/x"} 5
`
	v, err := findMetric(strings.NewReader(text), "onebox_websocket_connections")
	if err != nil || v != 10000 {
		t.Errorf("findMetric = %v, %v; want 10000", v, err)
	}
	v, err = findMetric(strings.NewReader(text), "onebox_http_requests_total")
	if err != nil || v != 5 {
		t.Errorf("labelled findMetric = %v, %v; want 5", v, err)
	}
	if _, err := findMetric(strings.NewReader(text), "missing"); err == nil {
		t.Error("no error for a missing metric")
	}
}
