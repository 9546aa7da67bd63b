package inbox

// Live is the service's view of the live stream: who is connected, and a way
// to cut sockets off when their credentials are withdrawn. The hub implements
// it; with several server processes the hub carries these calls across them.
type Live interface {
	// Online lists the ids of the tenant's agents that hold a live socket.
	Online(tenantID string) []string
	// Disconnect closes, with 4401, every socket of the tenant whose
	// session matches: by key id, session hash or agent id (empty = any).
	Disconnect(tenantID string, match Match)
}

// Match selects sockets by the session that opened them. Empty fields match
// anything; a zero Match matches nothing.
type Match struct {
	KeyID       string
	SessionHash string
	AgentID     string
}

// Matches reports whether s is selected by m.
func (m Match) Matches(s Session) bool {
	if m == (Match{}) {
		return false
	}
	return (m.KeyID == "" || m.KeyID == s.KeyID) &&
		(m.SessionHash == "" || m.SessionHash == s.Hash) &&
		(m.AgentID == "" || m.AgentID == s.AgentID)
}

// NoLive is a Live with nobody connected, for tools and tests that run the
// service without a hub.
type NoLive struct{}

func (NoLive) Online(string) []string   { return nil }
func (NoLive) Disconnect(string, Match) {}
