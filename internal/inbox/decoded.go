package inbox

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
)

// Every inbound message reads its channel, its contact and its
// conversation, and decoding those records (JSON with several timestamps,
// the conversation with a whole last message inside) was about a fifth of
// the CPU ingest spends. decodedCache remembers, for a bounded number of
// records, a decoded value together with the exact bytes it came from (or
// was encoded to). A read whose stored bytes are the remembered ones takes
// a copy of the remembered value instead of decoding: equal bytes decode to
// equal values, so the cache can only ever hand out what the store holds,
// whichever process or transaction wrote it, and needs no invalidation to
// stay correct. It is forgotten on erasure all the same, so an erased
// customer's details do not linger in memory.

// decodedShards spreads concurrent writers over locks.
const decodedShards = 16

type decodedCache[T any] struct {
	seed   maphash.Seed
	perMax int       // entries per shard
	clone  func(T) T // a copy sharing nothing a caller may change
	shards [decodedShards]decodedShard[T]
}

type decodedShard[T any] struct {
	mu sync.Mutex
	m  map[string]decodedEntry[T]
}

type decodedEntry[T any] struct {
	raw []byte // never changed by anyone (see put)
	v   T
}

func newDecodedCache[T any](max int, clone func(T) T) *decodedCache[T] {
	return &decodedCache[T]{seed: maphash.MakeSeed(), perMax: max/decodedShards + 1, clone: clone}
}

func (d *decodedCache[T]) shard(key string) *decodedShard[T] {
	return &d.shards[maphash.String(d.seed, key)%decodedShards]
}

// get returns a copy of the value remembered for key if it came from
// exactly raw.
func (d *decodedCache[T]) get(key string, raw []byte) (T, bool) {
	sh := d.shard(key)
	sh.mu.Lock()
	e, ok := sh.m[key]
	sh.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		var zero T
		return zero, false
	}
	return d.clone(e.v), true
}

// put remembers v as what raw decodes to. The cache keeps a copy of v, so
// the caller may go on changing its own, but raw itself: nobody may change
// it afterwards (it is a record's encoding, as the store keeps it too).
// stored, when set, turns the copy into what decoding raw gives.
func (d *decodedCache[T]) put(key string, raw []byte, v T, stored func(*T)) {
	e := decodedEntry[T]{raw: raw, v: d.clone(v)}
	if stored != nil {
		stored(&e.v)
	}
	sh := d.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = make(map[string]decodedEntry[T])
	}
	if _, ok := sh.m[key]; !ok && len(sh.m) >= d.perMax {
		for k := range sh.m { // map order is random: evict any one
			delete(sh.m, k)
			break
		}
	}
	sh.m[key] = e
}

// clear forgets everything.
func (d *decodedCache[T]) clear() {
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		sh.m = nil
		sh.mu.Unlock()
	}
}

// decode gives raw's value for key: the remembered one when raw is what it
// came from, else decoded (and then remembered). fix, when set, is applied
// to a freshly decoded value before it is remembered (defaults the store's
// format leaves out). raw is kept when remembered: it must be the caller's
// own copy of the stored bytes, as a Get into a json.RawMessage gives.
func (d *decodedCache[T]) decode(key string, raw []byte, fix func(*T)) (T, error) {
	if v, ok := d.get(key, raw); ok {
		return v, nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, err
	}
	if fix != nil {
		fix(&v)
	}
	d.put(key, raw, v, nil)
	return v, nil
}

// decodedRecords are the Service's caches of hot records, keyed by tenant
// and id.
type decodedRecords struct {
	conversations *decodedCache[Conversation]
	contacts      *decodedCache[Contact]
	channels      *decodedCache[channelRecord]
}

// Sizes: a busy single server's working set of recent conversations; a few
// kilobytes each.
const (
	decodedConversations = 4096
	decodedContacts      = 4096
	decodedChannels      = 1024
)

func newDecodedRecords() decodedRecords {
	return decodedRecords{
		conversations: newDecodedCache(decodedConversations, cloneConversation),
		contacts:      newDecodedCache(decodedContacts, func(c Contact) Contact { return c }),
		channels:      newDecodedCache(decodedChannels, cloneChannelRecord),
	}
}

func (r decodedRecords) clear() {
	r.conversations.clear()
	r.contacts.clear()
	r.channels.clear()
}

func recordKey(tenant, id string) string { return tenant + "/" + id }

// cloneConversation copies everything a caller could change through c.
func cloneConversation(c Conversation) Conversation {
	c.AssigneeID = clonePtr(c.AssigneeID)
	c.Labels = slices.Clone(c.Labels)
	if c.Labels == nil {
		c.Labels = []string{}
	}
	c.SnoozedUntil = clonePtr(c.SnoozedUntil)
	c.LastInboundAt = clonePtr(c.LastInboundAt)
	if c.LastMessage != nil {
		m := cloneMessage(*c.LastMessage)
		c.LastMessage = &m
	}
	return c
}

func cloneMessage(m Message) Message {
	m.Media = clonePtr(m.Media)
	m.Error = clonePtr(m.Error)
	if m.Product != nil {
		p := *m.Product
		p.Image = clonePtr(p.Image)
		m.Product = &p
	}
	return m
}

func cloneChannelRecord(r channelRecord) channelRecord {
	r.Config = maps.Clone(r.Config)
	return r
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// storedConversation turns the cache's own copy of a conversation into
// what reading its stored form back gives: the fields the store's format
// leaves out are empty. What putConversation remembers must be exactly
// that, for a later read of the same bytes.
func storedConversation(c *Conversation) {
	c.TenantID = ""
	if m := c.LastMessage; m != nil {
		m.TenantID = ""
		if m.Product != nil {
			m.Product.TenantID = ""
		}
	}
}
