package push

import (
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"120":                           2 * time.Minute,
		"-5":                            0,
		"soon":                          0,
		"86400":                         24 * time.Hour,
		"9999999999":                    24 * time.Hour, // would overflow to a negative wait
		"18446744074":                   24 * time.Hour, // would wrap to a few hundred ms
		"99999999999999999999999":       24 * time.Hour,
		"Fri, 04 Dec 2026 12:00:30 GMT": 30 * time.Second,
		"Fri, 04 Dec 2026 11:00:00 GMT": 0,
		"Sat, 04 Dec 2027 12:00:00 GMT": 24 * time.Hour,
	} {
		if got := ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}
