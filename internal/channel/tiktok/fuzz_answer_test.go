package tiktok

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

// FuzzSendAnswer: any answer to a send is accepted only as a 2xx JSON
// envelope with code 0; anything else is a SendError with a code and a
// message, retried exactly when the status (non-2xx) or the envelope's
// code (2xx) says "not now", and waiting at most a day.
func FuzzSendAnswer(f *testing.F) {
	f.Add(200, "", []byte(`{"code":0,"message":"OK","request_id":"2025","data":{"message":{"message_id":"7513"}}}`))
	f.Add(200, "", []byte(`{"code":0,"message":"OK","data":{"media_id":"v0123"}}`))
	f.Add(200, "", []byte(`{"code":0,"data":null}`))
	f.Add(200, "", []byte(`{"code":0,"data":"text"}`))
	f.Add(200, "", []byte(`{"code":40100,"message":"Too many requests"}`))
	f.Add(200, "", []byte(`{"code":40002,"message":"  "}`))
	f.Add(200, "", []byte(`{"code":51000,"message":"system error"}`))
	f.Add(200, "", []byte(`{"code":1.5}`))
	f.Add(429, "7", []byte(`{"code":40100,"message":"rate"}`))
	f.Add(502, "", []byte(`<html>bad gateway</html>`))
	f.Add(401, "", []byte(`{"code":40105,"message":"Access token is invalid"}`))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		s := NewSender(SenderConfig{Now: func() time.Time { return time.Unix(1749416383, 0) }})
		a := channeltest.FuzzedAnswer(status, retryAfter, body)
		var data struct {
			Message struct {
				MessageID string `json:"message_id"`
			} `json:"message"`
		}
		err := s.read(a, &data)
		ok2xx := a.Status >= 200 && a.Status < 300
		var env answer
		envErr := json.Unmarshal(body, &env)
		if err == nil {
			if !ok2xx || envErr != nil || env.Code != 0 {
				t.Fatalf("status %d body %q accepted", a.Status, body)
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
		if se.RetryAfter < 0 || se.RetryAfter > 24*time.Hour || (se.RetryAfter > 0 && !se.Temporary) {
			t.Fatalf("retry after %v (temporary %v)", se.RetryAfter, se.Temporary)
		}
		if !ok2xx {
			want := a.Status == http.StatusTooManyRequests || a.Status == http.StatusRequestTimeout || a.Status >= 500
			if se.Temporary != want {
				t.Fatalf("status %d: temporary = %v, want %v", a.Status, se.Temporary, want)
			}
			return
		}
		if se.Code == "bad_answer" {
			if se.Temporary {
				t.Fatal("an unreadable answer is retried")
			}
			return
		}
		code, cerr := strconv.Atoi(se.Code)
		if cerr != nil || envErr != nil || code != env.Code || code == 0 {
			t.Fatalf("code %q for envelope %+v (%v)", se.Code, env, envErr)
		}
		if se.Temporary != temporary(code) || !strings.HasPrefix(se.Message, "TikTok: ") {
			t.Fatalf("refusal %+v", se)
		}
	})
}

// FuzzDownloadLink: a media download answer yields a link only from a 200
// envelope with code 0; an error names the status and nothing of the body.
func FuzzDownloadLink(f *testing.F) {
	f.Add(200, []byte(`{"code":0,"message":"OK","request_id":"1","data":{"download_url":"https://p16-tiktok.example/img.jpeg?x=1"}}`))
	f.Add(200, []byte(`{"code":40001,"message":"media not found","data":{}}`))
	f.Add(200, []byte(`{"code":0,"data":{"download_url":""}}`))
	f.Add(500, []byte(`{"code":50000}`))
	f.Add(200, []byte(`{"code":"0"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		a := channeltest.FuzzedAnswer(status, "", body)
		link, err := downloadLink(a)
		if err != nil {
			if link != "" {
				t.Fatalf("link %q with error %v", link, err)
			}
			if !strings.Contains(err.Error(), "HTTP "+strconv.Itoa(a.Status)) {
				t.Fatalf("error %q does not name status %d", err, a.Status)
			}
			return
		}
		if a.Status != http.StatusOK || link == "" {
			t.Fatalf("status %d gave link %q", a.Status, link)
		}
	})
}
