package pushtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// FCMService is FCM's HTTP v1 send endpoint on 127.0.0.1. Point the
// Firebase SDK at Endpoint (option.WithEndpoint) without authentication.
type FCMService struct {
	// Endpoint is the base URL up to and including /v1.
	Endpoint string
	Project  string
	// Sends receives every request, checked or not.
	Sends chan FCMSend

	srv     *httptest.Server
	mu      sync.Mutex
	answers map[string][]Answer // by token
	count   atomic.Int64
}

// FCMSend is one request the service received.
type FCMSend struct {
	Message FCMMessage
	// Authorization is the request's header (empty when unauthenticated).
	Authorization string
	Status        int
	// Err says what real FCM would have refused, or nil.
	Err error
}

// FCMMessage is the part of a v1 message OneBox sets.
type FCMMessage struct {
	Token        string            `json:"token"`
	Topic        string            `json:"topic"`
	Condition    string            `json:"condition"`
	Data         map[string]string `json:"data"`
	Notification *struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	} `json:"notification"`
	Android *struct {
		Priority     string `json:"priority"`
		CollapseKey  string `json:"collapse_key"`
		TTL          string `json:"ttl"`
		Notification *struct {
			Tag string `json:"tag"`
		} `json:"notification"`
	} `json:"android"`
}

// NewFCMService starts a service for project; Close stops it.
func NewFCMService(project string) *FCMService {
	s := &FCMService{Project: project, Sends: make(chan FCMSend, 1024), answers: map[string][]Answer{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.Endpoint = s.srv.URL + "/v1"
	return s
}

// Close stops the service.
func (s *FCMService) Close() { s.srv.Close() }

// Count is how many requests were received.
func (s *FCMService) Count() int64 { return s.count.Load() }

// Answer scripts the next responses for a token, in order.
func (s *FCMService) Answer(token string, answers ...Answer) {
	s.mu.Lock()
	s.answers[token] = append(s.answers[token], answers...)
	s.mu.Unlock()
}

// FCM error answers, shaped as FCM v1 sends them.
var (
	FCMUnregistered = Answer{Status: http.StatusNotFound, Body: fcmError(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED", "")}
	FCMInvalidToken = Answer{Status: http.StatusBadRequest, Body: fcmError(400, "INVALID_ARGUMENT",
		"The registration token is not a valid FCM registration token", "INVALID_ARGUMENT", "message.token")}
	// FCMInvalidOther is an INVALID_ARGUMENT about something other than
	// the token: the device must be kept.
	FCMInvalidOther = Answer{Status: http.StatusBadRequest, Body: fcmError(400, "INVALID_ARGUMENT",
		"Invalid value at 'message.android.ttl'", "INVALID_ARGUMENT", "message.android.ttl")}
	FCMSenderMismatch = Answer{Status: http.StatusForbidden, Body: fcmError(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH", "")}
)

// FCMQuota is a 429 QUOTA_EXCEEDED with a Retry-After.
func FCMQuota(retryAfter string) Answer {
	return Answer{Status: http.StatusTooManyRequests, RetryAfter: retryAfter,
		Body: fcmError(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED", "")}
}

func fcmError(code int, status, message, fcmCode, field string) string {
	details := []any{map[string]any{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcmCode}}
	if field != "" {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []any{map[string]any{"field": field, "description": message}}})
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": message, "status": status, "details": details}})
	return string(b)
}

var ttlPattern = regexp.MustCompile(`^\d+(\.\d{1,9})?s$`)

func (s *FCMService) serve(w http.ResponseWriter, r *http.Request) {
	n := s.count.Add(1)
	send := FCMSend{Authorization: r.Header.Get("Authorization")}
	status := http.StatusOK
	fail := func(err error) {
		if send.Err == nil {
			send.Err, status = err, http.StatusBadRequest
		}
	}
	wantPath := "/v1/projects/" + s.Project + "/messages:send"
	if r.Method != http.MethodPost || r.URL.Path != wantPath {
		fail(fmt.Errorf("%s %s, want POST %s", r.Method, r.URL.Path, wantPath))
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		fail(fmt.Errorf("Content-Type %q, want application/json", ct))
	}
	var req struct {
		ValidateOnly bool            `json:"validate_only"`
		Message      json.RawMessage `json:"message"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || json.Unmarshal(body, &req) != nil || req.Message == nil {
		fail(fmt.Errorf("body %q is not {\"message\":{...}}", body))
	} else if err := json.Unmarshal(req.Message, &send.Message); err != nil {
		// Also catches data values that are not strings.
		fail(fmt.Errorf("message: %w", err))
	}
	m := send.Message
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		fail(fmt.Errorf("message names %d targets, want exactly one", targets))
	}
	if m.Android != nil {
		if p := m.Android.Priority; p != "" && p != "normal" && p != "high" {
			fail(fmt.Errorf("android.priority %q, want normal or high", p))
		}
		if m.Android.TTL != "" && !ttlPattern.MatchString(m.Android.TTL) {
			fail(fmt.Errorf("android.ttl %q is not a duration like \"3.5s\"", m.Android.TTL))
		}
	}
	if len(req.Message) > 4096+1024 {
		fail(fmt.Errorf("message of %d bytes is over FCM's 4 KB payload", len(req.Message)))
	}
	s.mu.Lock()
	var ans *Answer
	if q := s.answers[m.Token]; len(q) > 0 {
		ans = &q[0]
		s.answers[m.Token] = q[1:]
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case send.Err != nil:
		send.Status = status
		w.WriteHeader(status)
		io.WriteString(w, fcmError(400, "INVALID_ARGUMENT", send.Err.Error(), "INVALID_ARGUMENT", ""))
	case ans != nil:
		send.Status = ans.Status
		if ans.RetryAfter != "" {
			w.Header().Set("Retry-After", ans.RetryAfter)
		}
		w.WriteHeader(ans.Status)
		io.WriteString(w, ans.Body)
	default:
		send.Status = http.StatusOK
		fmt.Fprintf(w, `{"name":"projects/%s/messages/%d"}`, s.Project, n)
	}
	select {
	case s.Sends <- send:
	default:
	}
}
