package inbox

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Push devices are how agents with no open socket still hear of new customer
// messages: a browser's Web Push subscription or an Android app's FCM token.
// Each belongs to the session (device) that registered it, so signing that
// device out, or revoking the key it signed in with, silences it.

// Push device kinds.
const (
	PushWebPush = "webpush"
	PushFCM     = "fcm"
)

// MaxPushDevices caps an agent's devices; registering one more replaces the
// one refreshed longest ago, which is the one most likely abandoned.
const MaxPushDevices = 10

// Push collections. Devices are keyed under their agent so the per-agent cap
// and the sign-out clean-up read a handful of records; the global owner index
// lets a browser or phone that changes hands follow its latest user.
const (
	CollPushDevices  = "push_devices"  // per tenant: agent id + "/" + device id -> PushDevice
	CollPushOwners   = "push_owners"   // global: device id -> PushOwner
	CollPushSettings = "push_settings" // per tenant: "push" -> PushSettings

	settingVAPID    = "vapid" // in the global settings collection
	settingPushKey  = "push"
	maxEndpointLen  = 2048
	maxFCMTokenLen  = 4096
	minFCMTokenLen  = 16
	p256PublicLen   = 65
	authSecretLen   = 16
	deviceIDHashLen = 32 // hex characters of SHA-256 kept in a device id
)

// PushDevice is one registered endpoint or token, as stored. Endpoint and
// Token are capabilities (whoever holds one can push to the device), so the
// API never shows them back.
type PushDevice struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	TenantID    string     `json:"-"`
	AgentID     string     `json:"agent_id"`
	SessionHash string     `json:"session_hash"`
	KeyID       string     `json:"key_id"`
	Endpoint    string     `json:"endpoint,omitempty"`
	P256dh      string     `json:"p256dh,omitempty"`
	Auth        string     `json:"auth,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Token       string     `json:"token,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

// Ref names the device for removal.
func (d PushDevice) Ref() PushDeviceRef { return PushDeviceRef{AgentID: d.AgentID, ID: d.ID} }

// PushDeviceRef identifies a device within its tenant.
type PushDeviceRef struct {
	AgentID string
	ID      string
}

// PushOwner says which tenant and agent a device id currently belongs to.
type PushOwner struct {
	TenantID string `json:"tenant_id"`
	AgentID  string `json:"agent_id"`
}

// PushSettings is a tenant's push policy. Private sends only ids: message
// text never transits a browser vendor's or Google's servers, and the app
// fetches it over the API.
type PushSettings struct {
	Private bool `json:"private"`
}

// VAPIDKeys identify this server to Web Push services (RFC 8292): a P-256
// key pair, base64url without padding. The private key never leaves the
// server.
type VAPIDKeys struct {
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

// WebPushSubscription is what a browser's PushSubscription.toJSON() holds.
type WebPushSubscription struct {
	Endpoint  string
	P256dh    string
	Auth      string
	ExpiresAt *time.Time
}

// DeviceID derives a device's id from its endpoint or token, so the same
// browser or phone registering again finds its record.
func DeviceID(kind, address string) string {
	sum := sha256.Sum256([]byte(address))
	return kind + "-" + hex.EncodeToString(sum[:])[:deviceIDHashLen]
}

// ---- which push services subscriptions may name

// HostList is the set of push services Web Push endpoints may point at. The
// server POSTs to whatever URL a subscription names, so without this list
// any signed-in agent could make it call internal addresses.
type HostList struct {
	entries []hostEntry
	// plainHTTP allows http:// for the hosts named; only an operator's
	// explicit list turns it on (local push services in tests, sandboxes).
	plainHTTP bool
}

// hostEntry is one allowed host: an exact host name (or IP) or, with
// suffix set, any subdomain of it; port empty means the scheme's default.
type hostEntry struct {
	host   string
	port   string
	suffix bool
}

func (e hostEntry) String() string {
	s := e.host
	if strings.Contains(s, ":") {
		s = "[" + s + "]"
	}
	if e.suffix {
		s = "*." + s
	}
	if e.port != "" {
		s += ":" + e.port
	}
	return s
}

// DefaultPushHosts are the push services of the major browsers: Chrome and
// other Chromium browsers (FCM), Firefox (Mozilla autopush), Safari (Apple)
// and Edge on Windows (Windows Notification Service).
func DefaultPushHosts() HostList {
	return HostList{entries: []hostEntry{
		{host: "fcm.googleapis.com"},
		{host: "android.googleapis.com"},
		{host: "updates.push.services.mozilla.com"},
		{host: "push.services.mozilla.com"},
		{host: "web.push.apple.com"},
		{host: "notify.windows.com", suffix: true},
	}}
}

// ParsePushHosts reads ONEBOX_WEBPUSH_ALLOWED_HOSTS: a comma list of hosts
// ("push.example.com", "127.0.0.1:9000", "*.example.com"). An empty list
// means the default one. A list given here replaces the default and allows
// plain http:// to the hosts it names.
func ParsePushHosts(list string) (HostList, error) {
	if strings.TrimSpace(list) == "" {
		return DefaultPushHosts(), nil
	}
	l := HostList{plainHTTP: true}
	for _, e := range strings.Split(list, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		name, wildcard := strings.CutPrefix(e, "*.")
		u, err := url.Parse("//" + name)
		if err != nil || u.Host != name || u.Hostname() == "" || strings.ContainsAny(name, "/@?#* ") {
			return HostList{}, fmt.Errorf("push host %q is not a host or host:port", e)
		}
		l.entries = append(l.entries, hostEntry{host: u.Hostname(), port: u.Port(), suffix: wildcard})
	}
	if len(l.entries) == 0 {
		return DefaultPushHosts(), nil
	}
	return l, nil
}

// Empty reports whether the list allows nothing (its zero value).
func (l HostList) Empty() bool { return len(l.entries) == 0 }

// Hosts lists the entries, for logs and docs.
func (l HostList) Hosts() []string {
	out := make([]string, len(l.entries))
	for i, e := range l.entries {
		out[i] = e.String()
	}
	return out
}

// Check parses endpoint and tells whether the server may send to it.
func (l HostList) Check(endpoint string) (*url.URL, error) {
	if endpoint == "" {
		return nil, invalid("endpoint is required")
	}
	if len(endpoint) > maxEndpointLen {
		return nil, invalid("endpoint is longer than %d characters", maxEndpointLen)
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, invalid("endpoint is not an absolute URL")
	}
	if u.User != nil {
		return nil, invalid("endpoint must not carry credentials")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !l.plainHTTP {
			return nil, invalid("endpoint must be an https URL")
		}
	default:
		return nil, invalid("endpoint must be an https URL")
	}
	if !l.allows(u) {
		return nil, invalid("endpoint's host %s is not a push service this server sends to", u.Hostname())
	}
	return u, nil
}

func (l HostList) allows(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	port := portOf(u.Scheme, u.Port())
	for _, e := range l.entries {
		if portOf(u.Scheme, e.port) != port {
			continue
		}
		if host == e.host && !e.suffix || e.suffix && strings.HasSuffix(host, "."+e.host) {
			return true
		}
	}
	return false
}

// portOf makes the scheme's default port explicit, so "host" and
// "host:443" name the same https service.
func portOf(scheme, port string) string {
	if port != "" {
		return port
	}
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// ---- rules

// PushWanted reports whether a conversation is worth interrupting someone
// for: not resolved, and with something nobody has read yet.
func PushWanted(c Conversation) bool {
	return c.Status != StatusResolved && c.UnreadCount > 0
}

// PushRecipients lists who should be told of a new customer message in c:
// its assignee, or every active agent when nobody (active) is assigned; in
// either case never an agent who has the app open (online), since the live
// stream already told them.
func PushRecipients(c Conversation, agents []Agent, online []string) []string {
	if !PushWanted(c) {
		return nil
	}
	on := make(map[string]bool, len(online))
	for _, id := range online {
		on[id] = true
	}
	if c.AssigneeID != nil {
		for _, a := range agents {
			if a.ID == *c.AssigneeID && a.Active {
				if on[a.ID] {
					return nil
				}
				return []string{a.ID}
			}
		}
	}
	var ids []string
	for _, a := range agents {
		if a.Active && !on[a.ID] {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// ---- VAPID keys

// EnsureVAPIDKeys returns the server's VAPID keys, making and storing them
// with gen on first use so browsers' subscriptions (bound to the public key)
// survive restarts.
func (s *Service) EnsureVAPIDKeys(ctx context.Context, gen func() (VAPIDKeys, error)) (VAPIDKeys, error) {
	keys, err := s.vapidKeys(ctx)
	if err == nil {
		return keys, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return VAPIDKeys{}, err
	}
	fresh, err := gen()
	if err != nil {
		return VAPIDKeys{}, fmt.Errorf("generate VAPID keys: %w", err)
	}
	if fresh.PublicKey == "" || fresh.PrivateKey == "" {
		return VAPIDKeys{}, errors.New("generate VAPID keys: empty key")
	}
	err = s.store.Update(ctx, func(tx Tx) error {
		err := tx.Get(global(CollSettings), settingVAPID, &keys)
		if err == nil {
			return nil // another process got there first; keep its keys
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		keys = fresh
		return tx.Put(global(CollSettings), settingVAPID, keys)
	})
	if err != nil {
		return VAPIDKeys{}, fmt.Errorf("store VAPID keys: %w", err)
	}
	return keys, nil
}

func (s *Service) vapidKeys(ctx context.Context) (VAPIDKeys, error) {
	var keys VAPIDKeys
	err := s.store.View(ctx, func(tx Tx) error { return tx.Get(global(CollSettings), settingVAPID, &keys) })
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return keys, ErrNotFound
		}
		return keys, fmt.Errorf("load VAPID keys: %w", err)
	}
	return keys, nil
}

// VAPIDPublicKey is the key browsers subscribe with
// (applicationServerKey).
func (s *Service) VAPIDPublicKey(ctx context.Context) (string, error) {
	keys, err := s.vapidKeys(ctx)
	if errors.Is(err, ErrNotFound) {
		return "", Errorf(CodeUnavailable, "web push is not set up on this server")
	}
	return keys.PublicKey, err
}

// ---- devices

// SubscribeWebPush registers the caller's browser for Web Push, or
// refreshes it when the endpoint is already known. hosts is the operator's
// list of push services.
func (s *Service) SubscribeWebPush(ctx context.Context, p Principal, sub WebPushSubscription, hosts HostList) (PushDevice, error) {
	if _, err := hosts.Check(sub.Endpoint); err != nil {
		return PushDevice{}, err
	}
	dh, err := decodeKey(sub.P256dh)
	if err != nil || len(dh) != p256PublicLen {
		return PushDevice{}, invalid("keys.p256dh must be an uncompressed P-256 public key, base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(dh); err != nil {
		return PushDevice{}, invalid("keys.p256dh is not a point on P-256")
	}
	auth, err := decodeKey(sub.Auth)
	if err != nil || len(auth) != authSecretLen {
		return PushDevice{}, invalid("keys.auth must be a 16-byte secret, base64url")
	}
	if sub.ExpiresAt != nil && !sub.ExpiresAt.After(s.clock()) {
		return PushDevice{}, invalid("expirationTime has already passed")
	}
	d := PushDevice{
		ID: DeviceID(PushWebPush, sub.Endpoint), Kind: PushWebPush, Endpoint: sub.Endpoint,
		P256dh: base64.RawURLEncoding.EncodeToString(dh), Auth: base64.RawURLEncoding.EncodeToString(auth),
	}
	if sub.ExpiresAt != nil {
		at := sub.ExpiresAt.UTC()
		d.ExpiresAt = &at
	}
	return s.savePushDevice(ctx, p, d)
}

// decodeKey accepts the base64 spellings browsers and libraries produce:
// URL or standard alphabet, padded or not.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if len(s) > 200 {
		return nil, errors.New("too long")
	}
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// RegisterFCM registers the caller's Android device token.
func (s *Service) RegisterFCM(ctx context.Context, p Principal, token string) (PushDevice, error) {
	if err := checkFCMToken(token); err != nil {
		return PushDevice{}, err
	}
	return s.savePushDevice(ctx, p, PushDevice{ID: DeviceID(PushFCM, token), Kind: PushFCM, Token: token})
}

func checkFCMToken(token string) error {
	if token == "" {
		return invalid("token is required")
	}
	if len(token) < minFCMTokenLen || len(token) > maxFCMTokenLen {
		return invalid("token is not an FCM registration token")
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return invalid("token is not an FCM registration token")
		}
	}
	return nil
}

// savePushDevice stores d for the caller's session. A device has one owner:
// a browser that someone else signed in on last moves to them.
func (s *Service) savePushDevice(ctx context.Context, p Principal, d PushDevice) (PushDevice, error) {
	now := s.clock()
	tenant := p.Tenant.ID
	d.TenantID, d.AgentID, d.SessionHash, d.KeyID = tenant, p.Agent.ID, p.Session.Hash, p.Session.KeyID
	d.CreatedAt, d.UpdatedAt = now, now
	err := s.store.Update(ctx, func(tx Tx) error {
		d.CreatedAt = now // a store may run the fn more than once
		known := false
		var owner PushOwner
		err := tx.Get(global(CollPushOwners), d.ID, &owner)
		switch {
		case err == nil && owner.TenantID == tenant && owner.AgentID == d.AgentID:
			var old PushDevice
			err := tx.Get(tenantColl(tenant, CollPushDevices), d.AgentID+"/"+d.ID, &old)
			if err == nil {
				known = true
				d.CreatedAt = old.CreatedAt
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
		case err == nil:
			if err := tx.Delete(tenantColl(owner.TenantID, CollPushDevices), owner.AgentID+"/"+d.ID); err != nil {
				return err
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if !known {
			if err := makeRoom(tx, tenant, d.AgentID); err != nil {
				return err
			}
		}
		if err := tx.Put(tenantColl(tenant, CollPushDevices), d.AgentID+"/"+d.ID, d); err != nil {
			return err
		}
		return tx.Put(global(CollPushOwners), d.ID, PushOwner{TenantID: tenant, AgentID: d.AgentID})
	})
	if err != nil {
		return PushDevice{}, fmt.Errorf("register push device: %w", err)
	}
	return d, nil
}

// makeRoom removes the agent's least recently refreshed devices until one
// more fits under MaxPushDevices.
func makeRoom(tx Tx, tenant, agentID string) error {
	devices, err := agentDevices(tx, tenant, agentID)
	if err != nil || len(devices) < MaxPushDevices {
		return err
	}
	sort.Slice(devices, func(i, j int) bool {
		if !devices[i].UpdatedAt.Equal(devices[j].UpdatedAt) {
			return devices[i].UpdatedAt.Before(devices[j].UpdatedAt)
		}
		return devices[i].ID < devices[j].ID
	})
	for _, d := range devices[:len(devices)-MaxPushDevices+1] {
		if err := deleteDevice(tx, tenant, d.Ref()); err != nil {
			return err
		}
	}
	return nil
}

func agentDevices(tx Tx, tenant, agentID string) ([]PushDevice, error) {
	var out []PushDevice
	err := scanJSON(tx, tenantColl(tenant, CollPushDevices), agentID+"/", func(d PushDevice) bool {
		d.TenantID = tenant
		out = append(out, d)
		return true
	})
	return out, err
}

// deleteDevice removes a device and, when it still points here, its owner
// entry.
func deleteDevice(tx Tx, tenant string, ref PushDeviceRef) error {
	if err := tx.Delete(tenantColl(tenant, CollPushDevices), ref.AgentID+"/"+ref.ID); err != nil {
		return err
	}
	var owner PushOwner
	err := tx.Get(global(CollPushOwners), ref.ID, &owner)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if owner.TenantID != tenant || owner.AgentID != ref.AgentID {
		return nil
	}
	return tx.Delete(global(CollPushOwners), ref.ID)
}

// dropPushWhere removes the agent's devices that match, inside a change
// that withdraws their credentials (sign-out, key revocation).
func dropPushWhere(tx Tx, tenant, agentID string, match func(PushDevice) bool) error {
	devices, err := agentDevices(tx, tenant, agentID)
	if err != nil {
		return err
	}
	for _, d := range devices {
		if match(d) {
			if err := deleteDevice(tx, tenant, d.Ref()); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropSessionPush silences the devices a session registered.
func dropSessionPush(tx Tx, sess Session) error {
	return dropPushWhere(tx, sess.TenantID, sess.AgentID, func(d PushDevice) bool { return d.SessionHash == sess.Hash })
}

// dropKeyPush silences every device registered by sessions of key k.
func dropKeyPush(tx Tx, k AccessKey) error {
	return dropPushWhere(tx, k.TenantID, k.AgentID, func(d PushDevice) bool { return d.KeyID == k.ID })
}

// UnsubscribeWebPush forgets the caller's browser subscription. Forgetting
// one that is not (or no longer) registered is not an error.
func (s *Service) UnsubscribeWebPush(ctx context.Context, p Principal, endpoint string) error {
	if endpoint == "" {
		return invalid("endpoint is required")
	}
	if len(endpoint) > maxEndpointLen {
		return invalid("endpoint is longer than %d characters", maxEndpointLen)
	}
	return s.DropPushDevices(ctx, p.Tenant.ID, []PushDeviceRef{{AgentID: p.Agent.ID, ID: DeviceID(PushWebPush, endpoint)}})
}

// UnregisterFCM forgets the caller's device token.
func (s *Service) UnregisterFCM(ctx context.Context, p Principal, token string) error {
	if err := checkFCMToken(token); err != nil {
		return err
	}
	return s.DropPushDevices(ctx, p.Tenant.ID, []PushDeviceRef{{AgentID: p.Agent.ID, ID: DeviceID(PushFCM, token)}})
}

// DropPushDevices forgets devices a push service said are gone, or whose
// credentials lapsed.
func (s *Service) DropPushDevices(ctx context.Context, tenantID string, refs []PushDeviceRef) error {
	if len(refs) == 0 {
		return nil
	}
	err := s.store.Update(ctx, func(tx Tx) error {
		for _, r := range refs {
			if err := deleteDevice(tx, tenantID, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove push devices: %w", err)
	}
	return nil
}

// PushDevices lists the caller's registered devices.
func (s *Service) PushDevices(ctx context.Context, p Principal) ([]PushDevice, error) {
	var out []PushDevice
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		out, err = agentDevices(tx, p.Tenant.ID, p.Agent.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list push devices: %w", err)
	}
	return out, nil
}

// ---- settings

// PushSettings reads the tenant's push policy (admin).
func (s *Service) PushSettings(ctx context.Context, p Principal) (PushSettings, error) {
	if err := p.requireAdmin(); err != nil {
		return PushSettings{}, err
	}
	var ps PushSettings
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		ps, err = pushSettingsOf(tx, p.Tenant.ID)
		return err
	})
	return ps, err
}

// SetPushSettings changes the tenant's push policy (admin) and returns it.
func (s *Service) SetPushSettings(ctx context.Context, p Principal, ps PushSettings) (PushSettings, error) {
	if err := p.requireAdmin(); err != nil {
		return PushSettings{}, err
	}
	err := s.store.Update(ctx, func(tx Tx) error {
		if err := s.audit(tx, p, AuditPushSettingsSaved, "settings", "push"); err != nil {
			return err
		}
		return tx.Put(tenantColl(p.Tenant.ID, CollPushSettings), settingPushKey, ps)
	})
	if err != nil {
		return PushSettings{}, fmt.Errorf("save push settings: %w", err)
	}
	return ps, nil
}

func pushSettingsOf(tx Tx, tenant string) (PushSettings, error) {
	var ps PushSettings
	err := tx.Get(tenantColl(tenant, CollPushSettings), settingPushKey, &ps)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return ps, fmt.Errorf("load push settings: %w", err)
	}
	return ps, nil
}

// ---- planning a push

// PushPlan is what a push about one conversation needs: the conversation as
// it is now, the tenant's policy, and the devices to notify.
type PushPlan struct {
	Conversation Conversation
	Private      bool
	// Devices are the recipients' usable devices.
	Devices []PushDevice
	// Stale are recipients' devices whose subscription expired or whose
	// session or key is no longer valid; the caller should drop them.
	Stale []PushDeviceRef
}

// PlanPush decides, from the state committed now, whom to notify about a
// new customer message in a conversation. online lists the agents who hold a
// live socket. A conversation that is gone, resolved or read plans nobody,
// and so does a tenant without devices.
func (s *Service) PlanPush(ctx context.Context, tenantID, conversationID string, online []string) (PushPlan, error) {
	var plan PushPlan
	now := s.clock()
	err := s.store.View(ctx, func(tx Tx) error {
		// Most tenants of a busy server may have no push devices at all:
		// one cursor step answers for them.
		hasDevices := false
		if err := tx.Scan(tenantColl(tenantID, CollPushDevices), "", "", false, func(string, []byte) (bool, error) {
			hasDevices = true
			return false, nil
		}); err != nil || !hasDevices {
			return err
		}
		c, err := s.conversationOf(tx, tenantID, conversationID)
		if err != nil {
			return err
		}
		plan.Conversation = c
		if !PushWanted(c) {
			return nil
		}
		var agents []Agent
		if err := scanJSON(tx, tenantColl(tenantID, CollAgents), "", func(a Agent) bool {
			agents = append(agents, a)
			return true
		}); err != nil {
			return err
		}
		recipients := PushRecipients(c, agents, online)
		if len(recipients) == 0 {
			return nil
		}
		ps, err := pushSettingsOf(tx, tenantID)
		if err != nil {
			return err
		}
		plan.Private = ps.Private
		for _, id := range recipients {
			devices, err := agentDevices(tx, tenantID, id)
			if err != nil {
				return err
			}
			for _, d := range devices {
				ok, err := deviceUsable(tx, d, now)
				if err != nil {
					return err
				}
				if ok {
					plan.Devices = append(plan.Devices, d)
				} else {
					plan.Stale = append(plan.Stale, d.Ref())
				}
			}
		}
		return nil
	})
	if err != nil {
		return PushPlan{}, err
	}
	return plan, nil
}

// deviceUsable checks what sign-out and revocation normally clean up, so a
// device left behind (a session that simply expired) is never pushed to.
func deviceUsable(tx Tx, d PushDevice, now time.Time) (bool, error) {
	if d.ExpiresAt != nil && !d.ExpiresAt.After(now) {
		return false, nil
	}
	var sess Session
	if err := tx.Get(global(CollSessions), d.SessionHash, &sess); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	if !now.Before(sess.ExpiresAt) || sess.TenantID != d.TenantID || sess.AgentID != d.AgentID {
		return false, nil
	}
	k, err := keyOf(tx, d.TenantID, sess.KeyID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return k.RevokedAt == nil, nil
}
