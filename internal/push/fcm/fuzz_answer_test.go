package fcm_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/push"
	"github.com/onebox/onebox/internal/push/fcm"
)

// fuzzFCM is an FCM endpoint on 127.0.0.1 that answers whatever the
// current fuzz input says.
type fuzzFCM struct {
	mu         sync.Mutex
	status     int
	retryAfter string
	body       []byte
}

func (f *fuzzFCM) set(status int, retryAfter string, body []byte) {
	f.mu.Lock()
	f.status, f.retryAfter, f.body = status, retryAfter, body
	f.mu.Unlock()
}

func (f *fuzzFCM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	status, retryAfter, body := f.status, f.retryAfter, f.body
	f.mu.Unlock()
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fuzzStatus folds a fuzzed number into a final HTTP status. 503 becomes
// 502: the SDK itself retries a 503 with backoff, which would only slow
// the run down without reaching more of OneBox's code.
func fuzzStatus(n int) int {
	s := n
	if s < 200 || s > 599 {
		s = 200 + int(uint(n)%400)
	}
	if s == http.StatusServiceUnavailable {
		s = http.StatusBadGateway
	}
	return s
}

// FuzzErrorAnswers: whatever FCM answers, the SDK's parse and OneBox's
// classification end in one of the four outcomes; only a 2xx is
// delivered; a device is forgotten only on a 4xx (never because FCM is
// down); only a retry carries a wait; and the error kept for the log does
// not hold the device's token unless FCM's own answer quoted it.
func FuzzErrorAnswers(f *testing.F) {
	fcmErr := func(code int, status, msg, fcmCode, field string) []byte {
		b := `{"error":{"code":` + strconv.Itoa(code) + `,"message":"` + msg + `","status":"` + status + `","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"` + fcmCode + `"}`
		if field != "" {
			b += `,{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"` + field + `","description":"` + msg + `"}]}`
		}
		return []byte(b + `]}}`)
	}
	f.Add(200, "", []byte(`{"name":"projects/onebox-test/messages/0:1500415314455276%31bd1c9631bd1c96"}`))
	f.Add(200, "", []byte(`not json`))
	f.Add(404, "", fcmErr(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED", ""))
	f.Add(400, "", fcmErr(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT", "message.token"))
	f.Add(400, "", fcmErr(400, "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'", "INVALID_ARGUMENT", "message.android.ttl"))
	f.Add(403, "", fcmErr(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH", ""))
	f.Add(429, "3", fcmErr(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED", ""))
	f.Add(500, "", fcmErr(500, "INTERNAL", "oops", "INTERNAL", ""))
	f.Add(500, "", fcmErr(500, "INTERNAL", "oops", "UNREGISTERED", ""))
	f.Add(502, "Wed, 21 Oct 2026 07:28:00 GMT", []byte(`<html><body>502 Bad Gateway</body></html>`))
	f.Add(401, "", []byte(`{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`))
	f.Add(404, "", []byte(`{"error":{"code":404,"status":"NOT_FOUND","details":[{"errorCode":"UNREGISTERED"}]}}`))

	svc := &fuzzFCM{status: 200}
	srv := httptest.NewServer(svc)
	f.Cleanup(srv.Close)
	s, err := fcm.New(context.Background(), fcm.Config{Endpoint: srv.URL + "/v1", ProjectID: project})
	if err != nil {
		f.Fatal(err)
	}
	const tok = "fuzz-device-token-7QhZ2m:APA91bQ"
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		code := fuzzStatus(status)
		retryAfter = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f || r > 0x7e {
				return -1 // a header value carries printable ASCII only
			}
			return r
		}, retryAfter)
		svc.set(code, retryAfter, body)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res := s.Send(ctx, device(tok), note(false))
		if ctx.Err() != nil {
			t.Fatalf("status %d: the send did not end in time: %v", code, res.Err)
		}
		switch res.Outcome {
		case push.Delivered:
			if code < 200 || code >= 300 {
				t.Fatalf("status %d delivered", code)
			}
		case push.Gone:
			if res.Status < 400 || res.Status >= 500 {
				t.Fatalf("device forgotten on status %d (%v)", res.Status, res.Err)
			}
		case push.Retry, push.Rejected:
			if res.Err == nil {
				t.Fatalf("%v without an error", res.Outcome)
			}
		default:
			t.Fatalf("outcome %v", res.Outcome)
		}
		if res.RetryAfter != 0 && res.Outcome != push.Retry {
			t.Fatalf("%v with a wait of %v", res.Outcome, res.RetryAfter)
		}
		quoted := strings.Contains(string(body), tok) || strings.Contains(retryAfter, tok)
		if res.Err != nil && !quoted && strings.Contains(res.Err.Error(), tok) {
			t.Fatalf("error %q holds the device token", res.Err)
		}
	})
}
