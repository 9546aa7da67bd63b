package inbox

// Principal is who is making a call: an agent of a tenant, signed in through
// one session. Every tenant-scoped service call takes one, which is how the
// service keeps tenants apart without trusting ids from the caller.
type Principal struct {
	Tenant  Tenant
	Agent   Agent
	Session Session
	// IP is the client address the call came from, recorded in the audit
	// log; the HTTP layer sets it.
	IP string
}

// IsAdmin reports whether the principal holds the admin role.
func (p Principal) IsAdmin() bool { return p.Agent.Role == RoleAdmin }

// requireAdmin is checked before any lookup so agents get 403 whatever the id.
func (p Principal) requireAdmin() error {
	if !p.IsAdmin() {
		return ErrForbidden
	}
	return nil
}
