package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/jobs"
)

// TestSizeSettings reads the byte and connection bounds from the
// environment and refuses anything that is not a positive number, naming
// the variable, instead of starting with a bound nobody asked for.
func TestSizeSettings(t *testing.T) {
	t.Setenv("ONEBOX_MAX_BODY", "4096")
	t.Setenv("ONEBOX_MAX_UPLOAD", "8388608")
	t.Setenv("ONEBOX_MAX_CONNS", "250")
	c, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxBody != 4096 || c.MaxUpload != 8<<20 || c.MaxConns != 250 {
		t.Fatalf("MaxBody, MaxUpload, MaxConns = %d, %d, %d; want 4096, %d, 250", c.MaxBody, c.MaxUpload, c.MaxConns, 8<<20)
	}
	for _, env := range []string{"ONEBOX_MAX_BODY", "ONEBOX_MAX_UPLOAD", "ONEBOX_MAX_CONNS"} {
		for _, bad := range []string{"0", "-5", "lots", "1e6"} {
			t.Run(env+"="+bad, func(t *testing.T) {
				t.Setenv(env, bad)
				_, err := parseServe(nil, io.Discard)
				if err == nil || !strings.Contains(err.Error(), env) || !strings.Contains(err.Error(), bad) {
					t.Fatalf("parseServe = %v, want an error naming %s and %q", err, env, bad)
				}
			})
		}
	}
}

// TestSizeSettingsDefaults keeps the documented defaults when nothing is set.
func TestSizeSettingsDefaults(t *testing.T) {
	for _, env := range []string{"ONEBOX_MAX_BODY", "ONEBOX_MAX_UPLOAD", "ONEBOX_MAX_CONNS"} {
		t.Setenv(env, "")
	}
	c, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxBody != 1<<20 || c.MaxUpload != 16<<20 || c.MaxConns != 0 {
		t.Fatalf("MaxBody, MaxUpload, MaxConns = %d, %d, %d; want %d, %d, 0 (httpapi's default)", c.MaxBody, c.MaxUpload, c.MaxConns, 1<<20, 16<<20)
	}
}

// TestDurationSettings reads the catch-up period and the job lease from the
// environment and refuses a value that is not a duration or is too short.
func TestDurationSettings(t *testing.T) {
	t.Setenv("ONEBOX_CATCH_UP_INTERVAL", "")
	t.Setenv("ONEBOX_JOB_LEASE_TTL", "")
	c, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.CatchUpEvery != 2*time.Second || c.JobLeaseTTL != jobs.DefaultLeaseTTL {
		t.Fatalf("defaults: CatchUpEvery, JobLeaseTTL = %v, %v; want 2s, %v", c.CatchUpEvery, c.JobLeaseTTL, jobs.DefaultLeaseTTL)
	}
	t.Setenv("ONEBOX_CATCH_UP_INTERVAL", "250ms")
	t.Setenv("ONEBOX_JOB_LEASE_TTL", "5s")
	if c, err = parseServe(nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c.CatchUpEvery != 250*time.Millisecond || c.JobLeaseTTL != 5*time.Second {
		t.Fatalf("CatchUpEvery, JobLeaseTTL = %v, %v; want 250ms, 5s", c.CatchUpEvery, c.JobLeaseTTL)
	}
	for env, bad := range map[string]string{"ONEBOX_CATCH_UP_INTERVAL": "0s", "ONEBOX_JOB_LEASE_TTL": "500ms"} {
		for _, v := range []string{bad, "soon", "-1s"} {
			t.Run(env+"="+v, func(t *testing.T) {
				t.Setenv(env, v)
				_, err := parseServe(nil, io.Discard)
				if err == nil || !strings.Contains(err.Error(), env) || !strings.Contains(err.Error(), v) {
					t.Fatalf("parseServe = %v, want an error naming %s and %q", err, env, v)
				}
			})
		}
	}
}
