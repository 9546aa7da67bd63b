package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// queryRoute is one GET route of the table as the query fuzzer calls it.
type queryRoute struct {
	key, path string
	token     string
}

// skipsQueryFuzz are the GET routes the query fuzzer leaves out, each
// with why; every other GET route of the table is called.
var skipsQueryFuzz = map[string]string{
	"GET /api/v1/ws":    "a WebSocket upgrade; its frames are fuzzed in the ws package",
	"GET " + backupPath: "copies the whole store per call and reads no query",
	// The fuzz world sets up no Web Push keys, so the route can only
	// answer its documented 503; it reads no query either.
	"GET /api/v1/push/webpush/key": "reads no query; without keys it is always 503 unavailable",
}

// queryRoutes are the table's GET routes with ids filled in, each called
// with the session its access needs (none when public).
func (w *fuzzWorld) queryRoutes(tb testing.TB, ids map[string]string) []queryRoute {
	tb.Helper()
	var out []queryRoute
	seen := map[string]bool{}
	for _, rt := range w.srv.routes() {
		key := rt.method + " " + rt.path
		if rt.method != fiber.MethodGet || seen[key] {
			continue
		}
		seen[key] = true
		if _, skip := skipsQueryFuzz[key]; skip {
			continue
		}
		path, ok := fill(rt.path, ids)
		if !ok {
			tb.Fatalf("%s: no id for %v in the fuzz world", key, pathParams(rt.path))
		}
		token := map[access]string{member: w.agentToken, admin: w.adminToken}[rt.access]
		out = append(out, queryRoute{key: key, path: path, token: token})
	}
	return out
}

// uploadForQueries stores a file, so the media routes reach the check of
// their signed query (exp, sig) rather than stopping at an unknown id. It
// returns the world's ids with the file's, and the query of its signed URL.
func (w *fuzzWorld) uploadForQueries(tb testing.TB) (map[string]string, string) {
	tb.Helper()
	ct, body := bodyRoute{wrap: "multipart"}.encode([]byte("name=note.pdf\n%PDF-1.4\n%%EOF\n"))
	st, _, resp, err := w.do(fiber.MethodPost, "/api/v1/media", w.agentToken, ct, body)
	var up struct {
		Media struct {
			ID  string `json:"id"`
			URL string `json:"url"`
		} `json:"media"`
	}
	if err != nil || st != fiber.StatusCreated || json.Unmarshal(resp, &up) != nil || up.Media.ID == "" {
		tb.Fatalf("upload: %d %s %v", st, resp, err)
	}
	_, query, ok := strings.Cut(up.Media.URL, "?")
	if !ok {
		tb.Fatalf("media url %q carries no signed query", up.Media.URL)
	}
	if st, _, resp, err := w.do(fiber.MethodGet, "/api/v1/media/"+up.Media.ID+"?"+query, "", "", nil); err != nil || st != fiber.StatusOK {
		tb.Fatalf("the signed url answered %d %q %v, want 200", st, truncate(resp, 200), err)
	}
	ids := map[string]string{}
	for k, v := range w.ids {
		ids[k] = v
	}
	ids["media/:id"] = up.Media.ID
	return ids, query
}

// rawQuery turns fuzzed text into a request's query as a client could send
// it: bytes that cannot appear in a request line are percent-encoded, and
// everything else (including bad escapes like %zz) goes as it is.
func rawQuery(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c <= ' ' || c >= 0x7f || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// FuzzAPIQueries sends arbitrary query strings (limit, since, before,
// cursor, q, format, filters, signatures, a webhook's verification) to
// every GET route of the table, through the real handlers, service and
// store. Whatever comes in: no panic, no 5xx and no redirect; a refusal is
// a 4xx in the contract's error shape; a JSON answer is valid JSON; and a
// read never moves the tenant's event log.
func FuzzAPIQueries(f *testing.F) {
	w := newFuzzWorld(f)
	ids, signed := w.uploadForQueries(f)
	routes := w.queryRoutes(f, ids)
	seeds := querySeeds(ids, signed)
	for i, r := range routes {
		for _, s := range append([]string{"", "limit=1&q=%zz"}, seeds[r.key]...) {
			f.Add(uint8(i), s)
		}
		delete(seeds, r.key)
	}
	if len(seeds) > 0 {
		f.Fatalf("query seeds for routes the fuzzer does not call: %v", seeds)
	}
	f.Fuzz(func(t *testing.T, pick uint8, query string) {
		r := routes[int(pick)%len(routes)]
		target := r.path
		if query != "" {
			target += "?" + rawQuery(query)
		}
		before := w.head(t)
		st, hdr, resp, err := w.do(fiber.MethodGet, target, r.token, "", nil)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		what := fmt.Sprintf("GET %s (%s)", target, r.key)
		ct := hdr.Get("Content-Type")
		switch {
		case st >= 500 || st < 200 || (st >= 300 && st < 400):
			t.Fatalf("%s: %d %q", what, st, truncate(resp, 300))
		case st >= 400:
			var e struct {
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if !strings.HasPrefix(ct, "application/json") || json.Unmarshal(resp, &e) != nil ||
				e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s: %d answered %q (%s), not the error shape", what, st, truncate(resp, 300), ct)
			}
		case strings.HasPrefix(ct, "application/json") && len(resp) > 0 && !json.Valid(resp):
			t.Fatalf("%s: %d answered %q, not JSON", what, st, truncate(resp, 300))
		}
		if after := w.head(t); after != before {
			t.Fatalf("%s: answered %d but the event log moved from %d to %d", what, st, before, after)
		}
	})
}

// querySeeds are the queries each GET route reads, valid and not, by route
// key: the fuzzer starts from the parameters a route really parses.
func querySeeds(ids map[string]string, signedQuery string) map[string][]string {
	pages := []string{"limit=50", "limit=0", "limit=-1", "limit=201", "limit=1e3", "limit=abc", "limit=99999999999999999999",
		"cursor=QQ", "cursor=QR", "cursor=%00", "cursor=MjAyNi0wNS0wMVQwOTozMDowMFp8Y18x", "cursor=&limit=1", "limit=1&limit=2&cursor=QQ&cursor=QR"}
	signed := []string{signedQuery, signedQuery + "0", "exp=1&sig=abc", "exp=99999999999&sig=", "sig=%00", "exp=-1&sig=" + strings.Repeat("A", 43)}
	return map[string][]string{
		"GET /api/v1/conversations": append([]string{"q=hello", "q=%E2%82%AC", "q=" + strings.Repeat("a", 300),
			"status=open&assignee=me&label=vip", "status=bogus", "assignee=nobody"}, pages...),
		"GET /api/v1/conversations/:id/messages": {"before=" + ids["messages/:id"], "before=nope", "before=", "limit=1", "limit=201", "limit=-1"},
		"GET /api/v1/events": {"since=0", "since=5&limit=2", "since=-1", "since=18446744073709551615", "since=18446744073709551616",
			"since=1e3", "limit=99999999999999999999"},
		"GET /api/v1/catalog/products":       append([]string{"q=mug", "q=SKU-1", "available=true", "available=false", "available=maybe"}, pages...),
		"GET /api/v1/audit":                  {"limit=2", "cursor=QQ", "cursor=a/b", "cursor=%00/", "cursor=" + strings.Repeat("/", 100)},
		"GET /api/v1/contacts/:id/export":    {"format=json", "format=zip", "format=xml", "format="},
		"GET /api/v1/catalog/export":         {"format=csv", "limit=1"},
		"GET /webhooks/whatsapp/:channel_id": {"hub.mode=subscribe&hub.verify_token=v&hub.challenge=1158201444", "hub.mode=subscribe&hub.verify_token=x&hub.challenge=1", "hub.mode=unsubscribe"},
		"GET /api/v1/media/:id":              signed,
		"GET /api/v1/media/:id/thumbnail":    signed,
	}
}
