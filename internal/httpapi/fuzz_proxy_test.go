package httpapi

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzForwardedFor feeds arbitrary X-Forwarded-For values (and the same
// text as an ONEBOX_TRUSTED_PROXIES list) to the client-address logic: the
// answer is always a valid address, the peer itself unless the peer is a
// trusted proxy, otherwise one of the hops with only trusted proxies to
// its right.
func FuzzForwardedFor(f *testing.F) {
	for _, s := range []string{"", "203.0.113.1", "6.6.6.6, 203.0.113.1", "198.51.100.4, 10.1.2.3", "::ffff:1.2.3.4",
		"2001:db8::1, 10.0.0.1", "fe80::1%eth0", "nonsense, 10.0.0.1", " , ,", "10.0.0.0/8, 127.0.0.1", "1.2.3.4:80"} {
		f.Add(true, s)
		f.Add(false, s)
	}
	list, err := ParseTrustedProxies("127.0.0.0/8, 10.0.0.0/8, 2001:db8::/32")
	if err != nil {
		f.Fatal(err)
	}
	ps := proxies(list)
	trusted, untrusted := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("198.51.100.1")
	f.Fuzz(func(t *testing.T, peerTrusted bool, xff string) {
		peer := untrusted
		if peerTrusted {
			peer = trusted
		}
		got := forwardedClient(peer, [][]byte{[]byte(xff)}, ps)
		if !got.IsValid() || got.Zone() != "" {
			t.Fatalf("client %v from %q", got, xff)
		}
		if !peerTrusted && got != peer {
			t.Fatalf("untrusted peer, header %q: client %v", xff, got)
		}
		if got != peer {
			hops := strings.Split(xff, ",")
			at := -1
			for i := len(hops) - 1; i >= 0; i-- {
				if a, err := netip.ParseAddr(strings.TrimSpace(hops[i])); err == nil && a.Unmap() == got {
					at = i
					break
				}
			}
			if at < 0 {
				t.Fatalf("client %v is neither the peer nor in %q", got, xff)
			}
			for _, h := range hops[at+1:] {
				a, err := netip.ParseAddr(strings.TrimSpace(h))
				if err != nil || !ps.trusts(a.Unmap()) {
					t.Fatalf("client %v taken from left of %q in %q", got, h, xff)
				}
			}
		}

		// The same text as a list of trusted proxies: refused, or every
		// entry a valid range that reads back the same.
		list, err := ParseTrustedProxies(xff)
		if err != nil {
			return
		}
		for _, p := range list {
			back, err := netip.ParsePrefix(p.String())
			if !p.IsValid() || err != nil || back != p {
				t.Fatalf("entry %v of %q does not read back (%v)", p, xff, err)
			}
		}
	})
}
