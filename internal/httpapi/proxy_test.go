package httpapi

import (
	"net/netip"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.7 ,,::ffff:198.51.100.1, 2001:db8::/32, 172.16.5.9/12")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "198.51.100.1/32", "2001:db8::/32", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	if ps, err := ParseTrustedProxies(""); err != nil || len(ps) != 0 {
		t.Errorf("empty: %v, %v; want nothing trusted", ps, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "10.0.0.1:80", "10.0.0/8", "*"} {
		if _, err := ParseTrustedProxies("10.0.0.1," + bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// echoIP adds a route answering the client address the limits and the
// audit log would see.
func echoIP(s *Server) {
	s.app.Get("/api/test/ip", func(c *fiber.Ctx) error { return c.SendString(s.clientIP(c)) })
}

func trustProxies(list string) harnessOpt {
	return withConfig(func(c *Config) {
		ps, err := ParseTrustedProxies(list)
		if err != nil {
			panic(err)
		}
		c.TrustedProxies = ps
	})
}

func TestForwardedForIgnoredFromUntrustedPeer(t *testing.T) {
	h := newHarness(t, beforeServe(echoIP), trustProxies("10.0.0.0/8"),
		withLimits(Limits{SignIn: Rate{Per: slow, Burst: 1}, SignInKey: Rate{Per: -1}, Session: Rate{Per: -1}, Webhook: Rate{Per: -1}}))
	for _, xff := range []string{"", "203.0.113.1", "203.0.113.1, 10.0.0.1"} {
		if got := string(h.want(h.req("GET", "/api/test/ip", "", nil, "X-Forwarded-For", xff), 200).body); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For %q from 127.0.0.1 (not a trusted proxy): client %s, want 127.0.0.1", xff, got)
		}
	}
	// A guesser cannot buy a fresh sign-in budget with a made-up header.
	h.wantErr(h.req("POST", "/api/v1/session", "", signInBody("obx_guessaaaaaaaaaaaa"), "X-Forwarded-For", "203.0.113.1"), 401, "unauthorized")
	wantLimited(t, h.req("POST", "/api/v1/session", "", signInBody("obx_guessbbbbbbbbbbbb"), "X-Forwarded-For", "203.0.113.2"))
}

func TestForwardedForUsedFromTrustedProxy(t *testing.T) {
	h := newHarness(t, beforeServe(echoIP), trustProxies("127.0.0.1, 10.0.0.0/8"))
	for _, c := range []struct {
		xff  []string
		want string
	}{
		{nil, "127.0.0.1"},
		{[]string{"203.0.113.1"}, "203.0.113.1"},
		// The client wrote the left part; the proxy appended the address
		// it saw. Only that one counts.
		{[]string{"6.6.6.6, 203.0.113.1"}, "203.0.113.1"},
		// Through two proxies of ours.
		{[]string{"198.51.100.4, 10.1.2.3"}, "198.51.100.4"},
		{[]string{"2001:db8::7"}, "2001:db8::7"},
		{[]string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		// Garbage stops the walk at the last address a proxy vouched for.
		{[]string{"203.0.113.1, nonsense, 10.0.0.5"}, "10.0.0.5"},
		{[]string{"nonsense"}, "127.0.0.1"},
		// Only our proxies in the chain: the leftmost is as far as it goes.
		{[]string{"10.0.0.2, 10.0.0.1"}, "10.0.0.2"},
	} {
		var hdr []string
		for _, v := range c.xff {
			hdr = append(hdr, "X-Forwarded-For", v)
		}
		if got := string(h.want(h.req("GET", "/api/test/ip", "", nil, hdr...), 200).body); got != c.want {
			t.Errorf("X-Forwarded-For %q from a trusted proxy: client %s, want %s", c.xff, got, c.want)
		}
	}

	// The audit log records the client, not the proxy.
	tm := h.newTeam("Acme")
	h.want(h.req("POST", "/api/v1/agents", tm.adminToken,
		map[string]any{"name": "Bea", "email": "bea@acme.example", "role": "agent"}, "X-Forwarded-For", "198.51.100.23"), 201)
	var audit struct {
		Entries []struct {
			Action string `json:"action"`
			IP     string `json:"ip"`
		} `json:"entries"`
	}
	h.want(h.req("GET", "/api/v1/audit", tm.adminToken, nil), 200).json(t, &audit)
	found := false
	for _, e := range audit.Entries {
		if e.IP == "198.51.100.23" {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit entry from 198.51.100.23: %+v", audit.Entries)
	}
}

func TestSignInLimitPerForwardedClient(t *testing.T) {
	h := newHarness(t, trustProxies("127.0.0.0/8"),
		withLimits(Limits{SignIn: Rate{Per: slow, Burst: 1}, SignInKey: Rate{Per: -1}, Session: Rate{Per: -1}, Webhook: Rate{Per: -1}}))
	guess := signInBody("obx_guessaaaaaaaaaaaa")
	h.wantErr(h.req("POST", "/api/v1/session", "", guess, "X-Forwarded-For", "203.0.113.1"), 401, "unauthorized")
	// Another customer behind the same proxy has a budget of their own...
	h.wantErr(h.req("POST", "/api/v1/session", "", guess, "X-Forwarded-For", "203.0.113.2"), 401, "unauthorized")
	// ...and the first cannot dodge theirs by prepending an address.
	wantLimited(t, h.req("POST", "/api/v1/session", "", guess, "X-Forwarded-For", "192.0.2.99, 203.0.113.1"))
}

func TestProxiesTrusts(t *testing.T) {
	ps, _ := ParseTrustedProxies("10.0.0.0/8,::1")
	for a, want := range map[string]bool{"10.9.9.9": true, "11.0.0.1": false, "::1": true, "::2": false} {
		if got := proxies(ps).trusts(netip.MustParseAddr(a)); got != want {
			t.Errorf("trusts(%s) = %v", a, got)
		}
	}
}
