package main

import (
	"net/http"
	"testing"

	"github.com/onebox/onebox/internal/httpapi"
)

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want httpapi.Rate
	}{
		{"10/m:5", httpapi.Rate{Per: 10.0 / 60, Burst: 5}},
		{"20/s:100", httpapi.Rate{Per: 20, Burst: 100}},
		{"36/h:1", httpapi.Rate{Per: 0.01, Burst: 1}},
		{"off", httpapi.Rate{Per: -1}},
	} {
		got, err := parseRate(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseRate(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "10", "10/m", "10/d:5", "0/s:1", "-1/s:1", "1/s:0", "x/s:1"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) accepted", in)
		}
	}
}

// TestSignInLimitFromEnvironment checks the serve command hands
// ONEBOX_RATE_SIGNIN to the server.
func TestSignInLimitFromEnvironment(t *testing.T) {
	t.Setenv("ONEBOX_RATE_SIGNIN", "1/h:2")
	p := start(t, t.TempDir())
	for i := range 2 {
		if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": "obx_wrongwrongwrong"}, nil); st != http.StatusUnauthorized {
			t.Fatalf("sign-in %d: %d, want 401", i+1, st)
		}
	}
	if st := p.call("POST", "/api/v1/session", "", map[string]any{"access_key": "obx_otherotherother"}, nil); st != http.StatusTooManyRequests {
		t.Fatalf("third sign-in: %d, want 429", st)
	}
}
