package whatsapp

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/channel/channeltest"
	"github.com/onebox/onebox/internal/inbox"
)

var fuzzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// retriedStatus is the statuses every adapter retries whatever the body.
func retriedStatus(s int) bool {
	return s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s >= 500
}

// FuzzSendAnswer: any answer to a send is either accepted (a 2xx whose
// body, if any, is JSON) or a SendError with a code and a message, retried
// exactly when the status or WhatsApp's code says "not now", and waiting
// at most a day.
func FuzzSendAnswer(f *testing.F) {
	f.Add(200, "", []byte(`{"messaging_product":"whatsapp","contacts":[{"input":"4917","wa_id":"4917"}],"messages":[{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3"}]}`))
	f.Add(200, "", []byte(`{"messages":[]}`))
	f.Add(200, "", []byte(``))
	f.Add(200, "", []byte(`[1]`))
	f.Add(400, "", []byte(`{"error":{"message":"(#131009) Parameter value is not valid","type":"OAuthException","code":131009,"error_data":{"messaging_product":"whatsapp","details":"Unsupported message type"},"fbtrace_id":"AbCd"}}`))
	f.Add(400, "", []byte(`{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":"131047","error_subcode":2494010}}`))
	f.Add(429, "30", []byte(`{"error":{"message":"(#130429) Rate limit hit","code":130429}}`))
	f.Add(400, "", []byte(`{"error":{"message":"(#131056) pair rate limit","code":131056}}`))
	f.Add(503, "Wed, 21 Oct 2026 07:28:00 GMT", []byte(`<html>Service Unavailable</html>`))
	f.Add(401, "", []byte(`{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190}}`))
	f.Add(500, "-5", []byte(`{"error":{"code":null,"message":null}}`))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		s := NewSender(SenderConfig{Now: func() time.Time { return fuzzNow }})
		a := channeltest.FuzzedAnswer(status, retryAfter, body)
		var ok sendAnswer
		err := s.read(a, &ok)
		ok2xx := a.Status >= 200 && a.Status < 300
		if err == nil {
			if !ok2xx {
				t.Fatalf("status %d accepted", a.Status)
			}
			if len(body) > 0 && !json.Valid(body) {
				t.Fatalf("a body that is not JSON was accepted: %q", body)
			}
			if id := ok.id(); id != "" && (len(ok.Messages) == 0 || ok.Messages[0].ID != id) {
				t.Fatalf("id %q is not the first message's", id)
			}
			return
		}
		var se *inbox.SendError
		if !errors.As(err, &se) {
			t.Fatalf("error %T %v is not a SendError", err, err)
		}
		if se.Code == "" || se.Message == "" {
			t.Fatalf("SendError without code or message: %+v", se)
		}
		if ok2xx {
			if se.Code != "bad_answer" || se.Temporary {
				t.Fatalf("a 2xx failed as %+v, want a final bad_answer", se)
			}
			return
		}
		if want := retriedStatus(a.Status) || temporaryCodes[se.Code]; se.Temporary != want {
			t.Fatalf("status %d code %q: temporary = %v, want %v", a.Status, se.Code, se.Temporary, want)
		}
		if se.RetryAfter < 0 || se.RetryAfter > 24*time.Hour || (se.RetryAfter > 0 && !se.Temporary) {
			t.Fatalf("retry after %v (temporary %v)", se.RetryAfter, se.Temporary)
		}
		if strings.HasPrefix(se.Code, "http_") && se.Code != "http_"+strconv.Itoa(a.Status) {
			t.Fatalf("code %q for status %d", se.Code, a.Status)
		}
	})
}

// FuzzMediaInfo: a media lookup answer either yields a download link and
// a size within the limit, or an error that names no part of the answer
// beyond its status (the error ends up in the message an agent reads).
func FuzzMediaInfo(f *testing.F) {
	const max = 16 << 20
	f.Add(200, []byte(`{"url":"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2","mime_type":"image/jpeg","sha256":"abc","file_size":"303833","id":"2621233374848975","messaging_product":"whatsapp"}`))
	f.Add(200, []byte(`{"url":"https://lookaside.fbsbx.com/x","mime_type":"video/mp4","file_size":99999999999}`))
	f.Add(200, []byte(`{"url":"ftp://x","file_size":1}`))
	f.Add(200, []byte(`{"url":"http://127.0.0.1/x","file_size":null}`))
	f.Add(200, []byte(`{"url":"https://x","file_size":1.5e3}`))
	f.Add(404, []byte(`{"error":{"message":"Unsupported get request","code":100}}`))
	f.Add(200, []byte(`not json`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		a := channeltest.FuzzedAnswer(status, "", body)
		info, err := readMediaInfo(a, max)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			if len(body) >= 8 && strings.Contains(err.Error(), string(body)) {
				t.Fatalf("error %q echoes the answer", err)
			}
			return
		}
		if a.Status != http.StatusOK {
			t.Fatalf("status %d accepted", a.Status)
		}
		if !strings.HasPrefix(info.URL, "http") {
			t.Fatalf("link %q accepted", info.URL)
		}
		if n, err := strconv.ParseInt(string(info.FileSize), 10, 64); err == nil && n > max {
			t.Fatalf("size %d over the limit accepted", n)
		}
	})
}
