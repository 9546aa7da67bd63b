package sms

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/channel/channeltest"
	"github.com/onebox/onebox/internal/inbox"
)

// FuzzSendAnswer: a gateway's 2xx is always accepted (the id is a bonus,
// trimmed); anything else is a SendError coded by the status, with the
// gateway's reason or a plain one, retried exactly for 408, 429 and 5xx,
// and waiting at most a day.
func FuzzSendAnswer(f *testing.F) {
	f.Add(200, "", []byte(`{"id":"SM5f2a","status":"queued"}`))
	f.Add(202, "", []byte(`{"id":"  gw-1 \n"}`))
	f.Add(200, "", []byte(`OK`))
	f.Add(204, "", []byte(``))
	f.Add(400, "", []byte(`{"error":"invalid destination number"}`))
	f.Add(422, "", []byte(`{"error":{"code":21211,"message":"The 'To' number is not valid"}}`))
	f.Add(403, "", []byte(`{"message":"forbidden"}`))
	f.Add(429, "12", []byte(`{"error":"slow down"}`))
	f.Add(503, "Wed, 21 Oct 2026 07:28:00 GMT", []byte(`<html>unavailable</html>`))
	f.Add(500, "99999999999", []byte(`{"error":null,"message":""}`))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		s := NewSender(SenderConfig{Now: func() time.Time { return time.Unix(1749416383, 0) }})
		a := channeltest.FuzzedAnswer(status, retryAfter, body)
		id, err := s.read(a)
		if a.Status >= 200 && a.Status < 300 {
			if err != nil {
				t.Fatalf("status %d refused: %v", a.Status, err)
			}
			if id != strings.TrimSpace(id) {
				t.Fatalf("id %q is not trimmed", id)
			}
			return
		}
		if id != "" {
			t.Fatalf("status %d gave id %q", a.Status, id)
		}
		var se *inbox.SendError
		if !errors.As(err, &se) {
			t.Fatalf("status %d: error %T %v is not a SendError", a.Status, err, err)
		}
		if se.Code != "http_"+strconv.Itoa(a.Status) {
			t.Fatalf("code %q for status %d", se.Code, a.Status)
		}
		if !strings.HasPrefix(se.Message, "SMS gateway: ") && !strings.HasPrefix(se.Message, "the SMS gateway answered ") {
			t.Fatalf("message %q", se.Message)
		}
		want := a.Status == http.StatusTooManyRequests || a.Status == http.StatusRequestTimeout || a.Status >= 500
		if se.Temporary != want {
			t.Fatalf("status %d: temporary = %v, want %v", a.Status, se.Temporary, want)
		}
		if se.RetryAfter < 0 || se.RetryAfter > 24*time.Hour || (se.RetryAfter > 0 && !se.Temporary) {
			t.Fatalf("retry after %v (temporary %v)", se.RetryAfter, se.Temporary)
		}
	})
}
