package main

import (
	"io"
	"strings"
	"testing"
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
