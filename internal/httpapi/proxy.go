package httpapi

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// ParseTrustedProxies reads ONEBOX_TRUSTED_PROXIES: a comma-separated list
// of addresses and CIDR ranges ("10.0.0.0/8, 192.0.2.7"). Empty means no
// proxy is trusted. A malformed entry is an error, not skipped: a typo
// would otherwise silently turn the rate limits against the proxy itself.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, "/") {
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q is not an address or CIDR range", part)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is not an address or CIDR range", part)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// proxies is the set of trusted proxies.
type proxies []netip.Prefix

func (ps proxies) trusts(a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// strings is the list as Fiber's TrustedProxies takes it.
func (ps proxies) strings() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// clientIP is the address rate limits and the audit log see. It is the
// TCP peer unless the peer is a trusted proxy; then X-Forwarded-For is read
// from the right, skipping trusted proxies, and the first address that is
// not one is the client. Reading from the left, as Fiber's c.IP() does with
// a ProxyHeader, would believe whatever the client put in the header before
// the proxy appended the real address.
func (s *Server) clientIP(c *fiber.Ctx) string {
	peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return c.Context().RemoteIP().String()
	}
	return forwardedClient(peer.Unmap(), c.Request().Header.PeekAll(fiber.HeaderXForwardedFor), s.proxies).String()
}

// forwardedClient walks the X-Forwarded-For header lines from the right,
// starting at the TCP peer, while each hop is a trusted proxy.
func forwardedClient(peer netip.Addr, headers [][]byte, ps proxies) netip.Addr {
	client := peer
	if len(ps) == 0 || !ps.trusts(client) {
		return client
	}
	for i := len(headers) - 1; i >= 0; i-- {
		hops := strings.Split(string(headers[i]), ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil || a.Zone() != "" {
				// Whatever lies left of garbage cannot be traced; the last
				// hop a trusted proxy vouched for is the best answer.
				return client
			}
			client = a.Unmap()
			if !ps.trusts(client) {
				return client
			}
		}
	}
	return client
}
