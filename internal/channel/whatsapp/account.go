package whatsapp

import (
	"regexp"
	"strings"

	"github.com/onebox/onebox/internal/inbox"
)

// Defaults of a channel's optional config.
const (
	DefaultBaseURL = "https://graph.facebook.com"
	DefaultVersion = "v21.0"
)

// versionRe is the shape of a Graph API version; it becomes part of a URL
// path, so nothing else is let through.
var versionRe = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,3}$`)

// account is a channel's config, read once per call.
type account struct {
	phoneNumberID string
	accessToken   string
	appSecret     string
	verifyToken   string
	baseURL       string
	version       string
}

func accountOf(ch inbox.Channel) account {
	a := account{
		phoneNumberID: strings.TrimSpace(ch.Config["phone_number_id"]),
		accessToken:   strings.TrimSpace(ch.Config["access_token"]),
		appSecret:     ch.Config["app_secret"],
		verifyToken:   ch.Config["verify_token"],
		baseURL:       strings.TrimRight(strings.TrimSpace(ch.Config["api_base_url"]), "/"),
		version:       strings.TrimSpace(ch.Config["api_version"]),
	}
	if a.baseURL == "" {
		a.baseURL = DefaultBaseURL
	}
	if !versionRe.MatchString(a.version) {
		a.version = DefaultVersion
	}
	return a
}

// graph is the URL of a Graph API path under the account's version.
func (a account) graph(path string) string { return a.baseURL + "/" + a.version + "/" + path }
