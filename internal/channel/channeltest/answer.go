package channeltest

import (
	"net/http"

	"github.com/onebox/onebox/internal/channel"
)

// FuzzedAnswer builds the provider answer a fuzzed input stands for, for
// the adapters' fuzz targets: the status, if not one already, is folded
// into 100-599 so every class of answer is reached.
func FuzzedAnswer(status int, retryAfter string, body []byte) channel.Answer {
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	if status < 100 || status > 599 {
		status = 100 + int(uint(status)%500)
	}
	return channel.Answer{Status: status, Header: h, Body: body}
}
