package channel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// MaxAnswer caps how much of a provider's answer is read: answers are
// small JSON documents, and a misbehaving server must not fill memory.
const MaxAnswer = 1 << 20

// NewHTTPClient is the client adapters call providers with. The overall
// deadline comes from the caller's context (the outbox bounds each send);
// these limits catch a server that accepts a connection and goes quiet.
func NewHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   16,
			ForceAttemptHTTP2:     true,
		},
	}
}

// Answer is a provider's HTTP answer, its body read (up to MaxAnswer).
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req and reads the answer. An error means no answer arrived
// (the network failed, or ctx ended); it is a temporary SendError.
func Do(ctx context.Context, client *http.Client, req *http.Request, provider string) (Answer, error) {
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return Answer{}, NetworkError(provider, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer))
	if err != nil {
		return Answer{}, NetworkError(provider, err)
	}
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// PostJSON builds a JSON POST.
func PostJSON(url string, body any) (*http.Request, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// NetworkError is a send that got no answer: retried, since the provider
// most likely never saw it (and the ones that did deduplicate or report a
// status the outbox can reconcile).
func NetworkError(provider string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &inbox.SendError{Code: "send_timeout", Message: provider + " did not answer in time; will retry", Temporary: true}
	}
	var se *inbox.SendError
	if errors.As(err, &se) {
		return se
	}
	return &inbox.SendError{Code: "send_failed", Message: fmt.Sprintf("could not reach %s: %v; will retry", provider, trimURLError(err)), Temporary: true}
}

// trimURLError drops the URL from net/http's errors: it may carry a
// token in its query (some gateways work that way) and adds nothing for
// the agent who reads the message.
func trimURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// StatusError classifies a non-2xx answer: 429 and 5xx (and 408) are
// retried, honouring Retry-After; any other 4xx fails the message at once
// with the provider's own code and message, which the agent sees.
func StatusError(provider string, a Answer, code, message string, now time.Time) *inbox.SendError {
	if code == "" {
		code = "http_" + strconv.Itoa(a.Status)
	}
	if message == "" {
		message = fmt.Sprintf("%s answered %d %s", provider, a.Status, http.StatusText(a.Status))
	}
	se := &inbox.SendError{Code: code, Message: message}
	if a.Status == http.StatusTooManyRequests || a.Status >= 500 || a.Status == http.StatusRequestTimeout {
		se.Temporary = true
		se.RetryAfter = RetryAfter(a.Header.Get("Retry-After"), now)
	}
	return se
}

// RetryAfter reads a Retry-After header (seconds or an HTTP date); zero
// when absent or unreadable. It is capped at a day, past which the retry
// window is over anyway.
func RetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, 86400)) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), 24*time.Hour)
}

// Upload builds a multipart/form-data POST of fields and one file part,
// read whole from r (at most limit bytes) so the request can be replayed
// by the transport.
func Upload(url string, fields [][2]string, fileField, filename, mime string, r io.Reader, limit int64) (*http.Request, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, fmt.Errorf("build upload: %w", err)
		}
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, fileField, safeFilename(filename)))
	if mime == "" {
		mime = "application/octet-stream"
	}
	h.Set("Content-Type", mime)
	part, err := mw.CreatePart(h)
	if err != nil {
		return nil, fmt.Errorf("build upload: %w", err)
	}
	if _, err := io.Copy(part, LimitReader(r, limit)); err != nil {
		return nil, fmt.Errorf("read attachment: %w", err)
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("build upload: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, url, &buf)
	if err != nil {
		return nil, fmt.Errorf("build upload: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// safeFilename keeps a filename printable and free of quotes and paths.
func safeFilename(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == '/' || r == 0x7f {
			return '_'
		}
		return r
	}, name)
	if name == "" {
		return "file"
	}
	return name
}
