package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Verdict says how a row compares with its target.
type Verdict string

const (
	Pass Verdict = "PASS"
	Fail Verdict = "FAIL"
	Info Verdict = "" // a figure shown to explain the others; no target
)

// Row is one line of the report.
type Row struct {
	Scenario string  `json:"scenario"`
	Measure  string  `json:"measure"`
	Value    string  `json:"value"`
	Target   string  `json:"target,omitempty"`
	Verdict  Verdict `json:"verdict,omitempty"`
}

// Report is everything a run found, in the order it was found.
type Report struct {
	Header []string `json:"header"`
	Rows   []Row    `json:"rows"`
	Notes  []string `json:"notes,omitempty"`
}

// Add appends a row.
func (r *Report) Add(scenario, measure, value, target string, v Verdict) {
	r.Rows = append(r.Rows, Row{Scenario: scenario, Measure: measure, Value: value, Target: target, Verdict: v})
}

// Note appends a sentence printed under the table.
func (r *Report) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Failed counts rows that missed their target.
func (r *Report) Failed() int {
	n := 0
	for _, row := range r.Rows {
		if row.Verdict == Fail {
			n++
		}
	}
	return n
}

// Checked counts rows that have a target.
func (r *Report) Checked() int {
	n := 0
	for _, row := range r.Rows {
		if row.Verdict != Info {
			n++
		}
	}
	return n
}

// WriteText prints the report as an aligned table a person can read.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, h := range r.Header {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	if len(r.Header) > 0 {
		b.WriteByte('\n')
	}
	head := [5]string{"SCENARIO", "MEASURE", "RESULT", "TARGET", ""}
	widths := [5]int{}
	cells := func(row Row) [5]string {
		return [5]string{row.Scenario, row.Measure, row.Value, row.Target, string(row.Verdict)}
	}
	for i, h := range head {
		widths[i] = runeLen(h)
	}
	for _, row := range r.Rows {
		for i, c := range cells(row) {
			widths[i] = max(widths[i], runeLen(c))
		}
	}
	line := func(c [5]string) {
		var l strings.Builder
		for i, s := range c {
			l.WriteString(s)
			if i < len(c)-1 {
				l.WriteString(strings.Repeat(" ", widths[i]-runeLen(s)+2))
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	line(head)
	var rule [5]string
	for i := range rule {
		rule[i] = strings.Repeat("-", widths[i])
	}
	line(rule)
	prev := ""
	for _, row := range r.Rows {
		c := cells(row)
		if row.Scenario == prev {
			c[0] = ""
		}
		prev = row.Scenario
		line(c)
	}
	if n := r.Checked(); n > 0 {
		fmt.Fprintf(&b, "\n%d of %d targets met.\n", n-r.Failed(), n)
	}
	for _, n := range r.Notes {
		b.WriteString("\n")
		b.WriteString(wrap("note: "+n, 100, "      "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the report as one JSON document, for scripts.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func runeLen(s string) int { return len([]rune(s)) }

// wrap breaks text into lines of at most width runes at spaces, indenting
// continuation lines.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	col := 0
	for i, word := range strings.Fields(text) {
		wl := runeLen(word)
		if i > 0 {
			if col+1+wl > width {
				b.WriteString("\n")
				b.WriteString(indent)
				col = runeLen(indent)
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(word)
		col += wl
	}
	b.WriteString("\n")
	return b.String()
}

// verdict compares a measured value with a bound.
func atMost(v, bound float64) Verdict {
	if v <= bound {
		return Pass
	}
	return Fail
}

func atLeast(v, bound float64) Verdict {
	if v >= bound {
		return Pass
	}
	return Fail
}

// fmtDur prints a latency with a precision that suits its size.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

// fmtCount prints an integer with thousands separators: 15000 -> "15,000".
func fmtCount(n float64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprintf("%.0f", n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtBytes prints a size in KiB or MiB.
func fmtBytes(n float64) string {
	switch {
	case n >= 10<<20 || n <= -10<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", n/1024)
	}
}

// targetMS prints a latency target: "15 ms".
func targetMS(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
