package httpapi

import (
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// nonNil makes empty lists encode as [] rather than null, so clients can
// iterate without a check.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// keyView is an access key as the API shows it. It is spelled out here,
// rather than left to inbox.AccessKey's JSON tags, because the same type is
// also what the store serialises: the owner and the hash a record needs
// must never reach a client.
type keyView struct {
	ID         string     `json:"id"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

func viewKey(k inbox.AccessKey) keyView {
	return keyView{ID: k.ID, Prefix: k.Prefix, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt}
}

func viewKeys(ks []inbox.AccessKey) []keyView {
	out := make([]keyView, len(ks))
	for i, k := range ks {
		out[i] = viewKey(k)
	}
	return out
}

// agentView is an agent with its keys shown through keyView; its Keys
// field shadows the embedded one in the JSON encoding.
type agentView struct {
	inbox.Agent
	Keys []keyView `json:"keys,omitempty"`
}

func viewAgent(a inbox.Agent) agentView {
	v := agentView{Agent: a}
	if a.Keys != nil {
		v.Keys = viewKeys(a.Keys)
	}
	return v
}

func viewAgents(as []inbox.Agent) []agentView {
	out := make([]agentView, len(as))
	for i, a := range as {
		out[i] = viewAgent(a)
	}
	return out
}
