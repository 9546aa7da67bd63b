package tiktok

import (
	"strings"

	"github.com/onebox/onebox/internal/inbox"
)

// DefaultBaseURL is the Business API's host.
const DefaultBaseURL = "https://business-api.tiktok.com"

// apiPrefix is the Business Messaging API's path and version.
const apiPrefix = "/open_api/v1.3/business/message/"

// account is a channel's config.
type account struct {
	businessID   string
	accessToken  string
	clientSecret string
	baseURL      string
}

func accountOf(ch inbox.Channel) account {
	a := account{
		businessID:   strings.TrimSpace(ch.Config["business_id"]),
		accessToken:  strings.TrimSpace(ch.Config["access_token"]),
		clientSecret: ch.Config["client_secret"],
		baseURL:      strings.TrimRight(strings.TrimSpace(ch.Config["api_base_url"]), "/"),
	}
	if a.baseURL == "" {
		a.baseURL = DefaultBaseURL
	}
	return a
}

// api is the URL of a messaging endpoint ("send/", "media/upload/", ...).
func (a account) api(endpoint string) string { return a.baseURL + apiPrefix + endpoint }
