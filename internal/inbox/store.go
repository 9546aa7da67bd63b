package inbox

import (
	"bytes"
	"context"
	"encoding/json"
)

// Collection names a keyed set of records. A collection with an empty Tenant
// is global (tenants, credential indexes); every other one belongs to exactly
// one tenant, which is what keeps tenants apart at the storage level.
type Collection struct {
	Tenant string
	Name   string
}

// Global and per-tenant collection names. Records are JSON documents.
const (
	// global
	CollTenants     = "tenants"      // tenant id -> Tenant
	CollKeyHashes   = "key_hashes"   // sha256(raw key) hex -> KeyRef
	CollSessions    = "sessions"     // sha256(token) hex -> Session
	CollChannelHome = "channel_home" // channel id -> tenant id (webhooks arrive without a tenant)
	CollSettings    = "settings"     // server-wide settings
	CollSnoozeDue   = "snooze_due"   // wake time + "/" + tenant + "/" + conversation id -> ""
	CollOutbox      = "outbox"       // tenant + "/" + message id -> OutboxItem

	// per tenant
	CollAgents        = "agents"         // agent id -> Agent
	CollKeys          = "keys"           // key id -> AccessKey
	CollKeySessions   = "key_sessions"   // key id + "/" + session hash -> "" (revocation)
	CollChannels      = "channels"       // channel id -> Channel
	CollContacts      = "contacts"       // contact id -> Contact
	CollContactHandle = "contact_handle" // channel id + "/" + handle -> contact id
	CollConversations = "conversations"  // conversation id -> Conversation
	CollContactConv   = "contact_conv"   // contact id -> conversation id
	CollConvSnooze    = "conv_snooze"    // conversation id -> its key in the global snooze_due index
	CollMessages      = "messages"       // conversation id + "/" + message id -> Message
	CollMessageIndex  = "message_index"  // message id -> conversation id
	CollClientIDs     = "client_ids"     // client id -> message id
	CollExternalIDs   = "external_ids"   // channel id + "/" + provider id -> message id
)

// KeyRef points from a key hash to the key, across tenants.
type KeyRef struct {
	TenantID string `json:"tenant_id"`
	KeyID    string `json:"key_id"`
}

// Encoded is a record's JSON that nobody changes again once made: a store
// may keep these very bytes, where a json.RawMessage (whose memory its
// caller may reuse) has to be copied. Records written for every inbound
// message are Encoded, sparing ingest a copy of each.
type Encoded []byte

// MarshalJSON lets a store that encodes values itself take e as it is.
func (e Encoded) MarshalJSON() ([]byte, error) {
	if len(e) == 0 {
		return []byte("null"), nil
	}
	return e, nil
}

// EncodeRecord is v's stored form for a Tx's Put, in memory the store may
// keep: pre-encoded JSON is taken as it is (the service encodes a record
// once for the store and its event; encoding it again would only validate
// it on the single committer), a json.RawMessage copied since its caller
// may reuse it, an Encoded not.
func EncodeRecord(v any) ([]byte, error) {
	switch raw := v.(type) {
	case json.RawMessage:
		if len(raw) == 0 {
			return []byte("null"), nil
		}
		return bytes.Clone(raw), nil
	case Encoded:
		return raw.MarshalJSON()
	}
	return json.Marshal(v)
}

// Tx is what a unit of work sees. Writes become visible to later reads in the
// same Tx and are applied all together or not at all. A Tx belongs to the
// goroutine running the unit of work and ends when it returns; calling the
// Store from inside a unit of work deadlocks. Scan callbacks may write, but
// the raw bytes they get are valid only during the callback.
type Tx interface {
	// Get loads the record at key into v; ErrNotFound when absent.
	Get(c Collection, key string, v any) error
	// Put stores v (JSON-encoded) at key. A json.RawMessage or an Encoded
	// is stored as it is.
	Put(c Collection, key string, v any) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(c Collection, key string) error
	// Scan visits records whose key has prefix, in key order (reverse when
	// asked), starting after `after` when it is not empty. Returning false
	// from fn stops the scan.
	Scan(c Collection, prefix, after string, reverse bool, fn func(key string, raw []byte) (bool, error)) error
	// Append adds an event to the tenant's log, assigning the next seq.
	// The event's Seq and TenantID are filled in.
	Append(tenant string, e *Event) error
	// Head is the tenant's last assigned seq (0 for an empty log).
	Head(tenant string) (uint64, error)
}

// Store runs units of work. Update commits durably (fsync) before it
// returns; the events a successful Update appended are handed, in seq order
// and after commit, to the store's publisher. An Update whose ctx ends after
// the store took it may still commit: callers that retry must be idempotent
// (client ids, provider ids), which every write path here is.
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(Tx) error) error
	// Events returns up to limit events with seq > since, and the head.
	// Oldest is the first seq still retained (1 when nothing was trimmed).
	Events(ctx context.Context, tenant string, since uint64, limit int) (events []Event, head uint64, err error)
	Oldest(ctx context.Context, tenant string) (uint64, error)
	Close() error
}

// Speculator is a Store that can run a unit of work ahead of its writer, on
// a snapshot, and have the writer only check and apply the result. The hot
// write paths (webhooks' messages and statuses) use it when the store has it.
// fn must be safe to run more than once: when what it read changed in the
// meantime it runs again, and only the last run counts, so it must reset
// anything it fills in outside the Tx.
type Speculator interface {
	Speculate(ctx context.Context, fn func(Tx) error) error
}

// HeadReader is a Store that reads many tenants' heads at once. Processes
// sharing a store check the heads of their quiet tenants every few
// seconds (so an event whose broadcast was lost still reaches every
// socket); one question for all of them keeps that cheap with thousands
// of tenants. A tenant that never wrote is absent from the result (head 0).
type HeadReader interface {
	Heads(ctx context.Context, tenants []string) (map[string]uint64, error)
}

// Publisher receives committed events. It must not block: the store calls it
// from its commit path, which is also what keeps publication in seq order.
// It must not modify the events, which share memory with the writers.
type Publisher interface {
	Publish(events []Event)
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func([]Event)

// Publish calls f.
func (f PublisherFunc) Publish(events []Event) { f(events) }
