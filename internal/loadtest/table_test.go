package loadtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestReportText(t *testing.T) {
	var r Report
	r.Header = []string{"OneBox load test"}
	r.Add("ingest", "durable inbound messages/s", "18,000/s", ">= 15,000/s", Pass)
	r.Add("ingest", "commit p99", "20.0 ms", "p99 <= 15 ms", Fail)
	r.Add("idle", "RSS before / after", "10 MiB / 150 MiB", "", Info)
	r.Note("a note")
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `OneBox load test

SCENARIO  MEASURE                     RESULT            TARGET
--------  --------------------------  ----------------  ------------  ----
ingest    durable inbound messages/s  18,000/s          >= 15,000/s   PASS
          commit p99                  20.0 ms           p99 <= 15 ms  FAIL
idle      RSS before / after          10 MiB / 150 MiB

1 of 2 targets met.

note: a note
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if r.Failed() != 1 || r.Checked() != 2 {
		t.Errorf("Failed, Checked = %d, %d; want 1, 2", r.Failed(), r.Checked())
	}
}

func TestReportJSON(t *testing.T) {
	var r Report
	r.Add("e2e", "p99", "12 ms", "p99 <= 50 ms", Pass)
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 1 || back.Rows[0] != r.Rows[0] {
		t.Errorf("round trip = %+v, want %+v", back.Rows, r.Rows)
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{fmtCount(0), "0"},
		{fmtCount(999), "999"},
		{fmtCount(15000), "15,000"},
		{fmtCount(1234567.6), "1,234,568"},
		{fmtCount(-2500), "-2,500"},
		{fmtDur(450 * time.Microsecond), "0.45 ms"},
		{fmtDur(12340 * time.Microsecond), "12.3 ms"},
		{fmtDur(400 * time.Millisecond), "400 ms"},
		{fmtBytes(16 << 10), "16.0 KiB"},
		{fmtBytes(150 << 20), "150.0 MiB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("note: one two three four", 12, "  ")
	want := "note: one\n  two three\n  four\n"
	if got != want {
		t.Errorf("wrap = %q, want %q", got, want)
	}
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if len(line) > 12 {
			t.Errorf("line %q longer than 12", line)
		}
	}
}

func TestParseScenarios(t *testing.T) {
	got, err := parseScenarios("e2e, idle")
	if err != nil || strings.Join(got, ",") != "idle,e2e" {
		t.Errorf("parseScenarios = %v, %v; want [idle e2e] in run order", got, err)
	}
	got, err = parseScenarios("all")
	if err != nil || len(got) != 4 {
		t.Errorf("parseScenarios(all) = %v, %v", got, err)
	}
	if _, err := parseScenarios("bogus"); err == nil {
		t.Error("parseScenarios accepted an unknown scenario")
	}
}
