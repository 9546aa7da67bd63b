package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/onebox/onebox/internal/inbox"

	bbolt "go.etcd.io/bbolt"
)

var (
	bucketGlobal = []byte("g")
	bucketEvents = []byte("events")
	bucketMeta   = []byte("meta")
	keyHead      = []byte("head")
)

var (
	errReadOnly = errors.New("write in a read-only transaction")
	errFinished = errors.New("transaction used after its fn returned")
)

func tenantBucket(tenant string) []byte { return []byte("t/" + tenant) }

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// tx is one request's view of a bbolt transaction. In a write batch several
// tx share one bbolt.Tx; each keeps its own undo log and events so it can be
// backed out or published on its own. A tx is not safe for concurrent use.
type tx struct {
	btx *bbolt.Tx
	// buckets caches nested bucket handles for the life of btx (shared by
	// every tx of a batch): each lookup is a B-tree search, and a write
	// touches the same few buckets again and again.
	buckets  map[string]*bbolt.Bucket
	writable bool
	done     bool
	undo     []undoEntry
	events   []inbox.Event
	// writes counts modifications so Scan can notice that the callback
	// changed the tree under its cursor and re-seek.
	writes uint64
	// ver, in write transactions, learns every key written (as txid) so
	// speculative runs can be checked against it.
	ver  *versions
	txid int
}

// undoEntry is what a key held before this tx wrote it (prev == nil: absent).
type undoEntry struct {
	top, sub []byte
	key      []byte
	prev     []byte
}

func (t *tx) finish() { t.done = true }

func (t *tx) check(write bool) error {
	if t.done {
		return errFinished
	}
	if write && !t.writable {
		return errReadOnly
	}
	return nil
}

// scope maps a collection to its (top, nested) bucket names, refusing the
// names that would let a caller overwrite the event log.
func scope(c inbox.Collection) (top, sub []byte, err error) {
	if c.Name == "" {
		return nil, nil, errors.New("collection without a name")
	}
	if c.Tenant == "" {
		return bucketGlobal, []byte(c.Name), nil
	}
	if c.Name == string(bucketEvents) || c.Name == string(bucketMeta) {
		return nil, nil, fmt.Errorf("collection name %q is reserved", c.Name)
	}
	return tenantBucket(c.Tenant), []byte(c.Name), nil
}

// readBucket returns nil when the bucket does not exist yet, which readers
// treat as empty: reads never create buckets.
func (t *tx) readBucket(top, sub []byte) *bbolt.Bucket {
	if b, ok := t.buckets[bucketKey(top, sub)]; ok {
		return b
	}
	b := t.btx.Bucket(top)
	if b == nil {
		return nil
	}
	nb := b.Bucket(sub)
	if nb != nil && t.buckets != nil {
		t.buckets[bucketKey(top, sub)] = nb
	}
	return nb
}

func bucketKey(top, sub []byte) string { return string(top) + "\x00" + string(sub) }

func (t *tx) writeBucket(top, sub []byte) (*bbolt.Bucket, error) {
	if b, ok := t.buckets[bucketKey(top, sub)]; ok {
		return b, nil
	}
	b, err := t.btx.CreateBucketIfNotExists(top)
	if err != nil {
		return nil, fmt.Errorf("create bucket %q: %w", top, err)
	}
	nb, err := b.CreateBucketIfNotExists(sub)
	if err != nil {
		return nil, fmt.Errorf("create bucket %q/%q: %w", top, sub, err)
	}
	if t.buckets != nil {
		t.buckets[bucketKey(top, sub)] = nb
	}
	return nb, nil
}

// put and del are the only paths that modify data, so the undo log is
// complete. The previous value is copied: bbolt's slice may point into pages
// this very write is about to change.
func (t *tx) put(top, sub, key, val []byte) error {
	b, err := t.writeBucket(top, sub)
	if err != nil {
		return err
	}
	t.record(b, top, sub, key)
	if err := b.Put(key, val); err != nil {
		t.undo = t.undo[:len(t.undo)-1]
		return err
	}
	t.wrote(top, sub, key)
	return nil
}

func (t *tx) del(top, sub, key []byte) error {
	b := t.readBucket(top, sub)
	if b == nil {
		return nil
	}
	if b.Get(key) == nil {
		return nil
	}
	t.record(b, top, sub, key)
	if err := b.Delete(key); err != nil {
		t.undo = t.undo[:len(t.undo)-1]
		return err
	}
	t.wrote(top, sub, key)
	return nil
}

func (t *tx) wrote(top, sub, key []byte) {
	t.writes++
	if t.ver != nil {
		t.ver.wrote(versionKey(top, sub, key), t.txid)
	}
}

func (t *tx) record(b *bbolt.Bucket, top, sub, key []byte) {
	var prev []byte
	if v := b.Get(key); v != nil {
		prev = bytes.Clone(v) // non-nil even for an empty value
	}
	t.undo = append(t.undo, undoEntry{top: top, sub: sub, key: bytes.Clone(key), prev: prev})
}

// rollback backs this tx's writes out of the shared bbolt transaction,
// newest first, so a key written twice ends at its original value. Buckets
// it created stay, empty, which readers cannot tell from missing.
func (t *tx) rollback() error {
	if err := t.undoTo(0); err != nil {
		return err
	}
	t.events = nil
	return nil
}

// undoTo backs out the writes recorded after the first n undo entries.
func (t *tx) undoTo(n int) error {
	for i := len(t.undo) - 1; i >= n; i-- {
		u := t.undo[i]
		b := t.readBucket(u.top, u.sub)
		if b == nil {
			return fmt.Errorf("undo %q/%q: bucket vanished", u.top, u.sub)
		}
		var err error
		if u.prev == nil {
			err = b.Delete(u.key)
		} else {
			err = b.Put(u.key, u.prev)
		}
		if err != nil {
			return fmt.Errorf("undo %q/%q %q: %w", u.top, u.sub, u.key, err)
		}
		t.undo = t.undo[:i]
	}
	return nil
}

// Get decodes the record at key into v. A nil v only checks existence.
func (t *tx) Get(c inbox.Collection, key string, v any) error {
	if err := t.check(false); err != nil {
		return err
	}
	top, sub, err := scope(c)
	if err != nil {
		return err
	}
	var raw []byte
	if b := t.readBucket(top, sub); b != nil {
		raw = b.Get([]byte(key))
	}
	if raw == nil {
		return fmt.Errorf("%s %q: %w", c.Name, key, inbox.ErrNotFound)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s %q: %w", c.Name, key, err)
	}
	return nil
}

func (t *tx) Put(c inbox.Collection, key string, v any) error {
	if err := t.check(true); err != nil {
		return err
	}
	top, sub, err := scope(c)
	if err != nil {
		return err
	}
	raw, err := encode(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", c.Name, key, err)
	}
	if err := t.put(top, sub, []byte(key), raw); err != nil {
		return fmt.Errorf("put %s %q: %w", c.Name, key, err)
	}
	return nil
}

// encode stores pre-encoded JSON as it is: the service encodes a record
// once for the store and its event, and re-encoding would only validate it
// again on the single committer.
func encode(v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if len(raw) == 0 {
			return []byte("null"), nil
		}
		return raw, nil
	}
	return json.Marshal(v)
}

func (t *tx) Delete(c inbox.Collection, key string) error {
	if err := t.check(true); err != nil {
		return err
	}
	top, sub, err := scope(c)
	if err != nil {
		return err
	}
	if err := t.del(top, sub, []byte(key)); err != nil {
		return fmt.Errorf("delete %s %q: %w", c.Name, key, err)
	}
	return nil
}

// Scan visits records with the given prefix in key order (descending when
// reverse), strictly after `after` in that order. raw is only valid during
// the callback; copy it to keep it. The callback may write, even to the
// scanned collection: the cursor re-seeks past the last visited key (records
// the callback itself adds ahead of the cursor may or may not be visited).
func (t *tx) Scan(c inbox.Collection, prefix, after string, reverse bool, fn func(key string, raw []byte) (bool, error)) error {
	if err := t.check(false); err != nil {
		return err
	}
	top, sub, err := scope(c)
	if err != nil {
		return err
	}
	b := t.readBucket(top, sub)
	if b == nil {
		return nil
	}
	if reverse {
		return t.scanReverse(b, []byte(prefix), []byte(after), fn)
	}
	return t.scanForward(b, []byte(prefix), []byte(after), fn)
}

type scanFunc = func(key string, raw []byte) (bool, error)

func (t *tx) scanForward(b *bbolt.Bucket, pfx, after []byte, fn scanFunc) error {
	cur := b.Cursor()
	start := pfx
	if bytes.Compare(after, pfx) > 0 {
		start = after
	}
	k, v := cur.Seek(start)
	if k != nil && len(after) > 0 && bytes.Equal(k, after) {
		k, v = cur.Next()
	}
	for k != nil && bytes.HasPrefix(k, pfx) {
		writes := t.writes
		if more, err := fn(string(k), v); err != nil || !more {
			return err
		}
		if t.writes == writes {
			k, v = cur.Next()
			continue
		}
		// The callback wrote: bbolt cursors do not survive that, re-seek.
		last := bytes.Clone(k)
		if k, v = cur.Seek(last); k != nil && bytes.Equal(k, last) {
			k, v = cur.Next()
		}
	}
	return nil
}

// scanReverse walks down from the exclusive upper bound: the smaller of
// after and the first key past the prefix range (nil meaning unbounded).
func (t *tx) scanReverse(b *bbolt.Bucket, pfx, after []byte, fn scanFunc) error {
	upper := prefixEnd(pfx)
	if len(after) > 0 && (upper == nil || bytes.Compare(after, upper) < 0) {
		upper = after
	}
	cur := b.Cursor()
	k, v := seekBefore(cur, upper)
	for {
		if k == nil {
			if t.writable {
				return t.scanReverseSlow(b, pfx, upper, fn)
			}
			return nil
		}
		if !bytes.HasPrefix(k, pfx) {
			return nil
		}
		writes := t.writes
		if more, err := fn(string(k), v); err != nil || !more {
			return err
		}
		upper = bytes.Clone(k)
		if t.writes == writes {
			k, v = cur.Prev()
		} else {
			k, v = seekBefore(cur, upper)
		}
	}
}

// scanReverseSlow finishes a reverse scan in a write transaction once the
// cursor reports the start. bbolt's Prev and Last can stop early at a page
// emptied by a delete earlier in the same write transaction (pages are only
// rebalanced at commit), so the start is confirmed with a forward Seek, which
// is reliable; if keys remain below upper they are collected going forward
// and visited backwards. Read transactions never see emptied pages.
func (t *tx) scanReverseSlow(b *bbolt.Bucket, pfx, upper []byte, fn scanFunc) error {
	var keys [][]byte
	cur := b.Cursor()
	for k, _ := cur.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx) && (upper == nil || bytes.Compare(k, upper) < 0); k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for i := len(keys) - 1; i >= 0; i-- {
		v := b.Get(keys[i])
		if v == nil { // deleted by the callback meanwhile
			continue
		}
		if more, err := fn(string(keys[i]), v); err != nil || !more {
			return err
		}
	}
	return nil
}

// seekBefore positions at the last key < bound (the last key when bound is
// nil). A nil key means "nothing below", except in write transactions (see
// scanReverseSlow).
func seekBefore(cur *bbolt.Cursor, bound []byte) ([]byte, []byte) {
	if bound != nil {
		if k, _ := cur.Seek(bound); k != nil {
			return cur.Prev()
		}
	}
	// Last never returns when every page of the bucket was emptied in this
	// write transaction; First is reliable and tells that case apart.
	if k, _ := cur.First(); k == nil {
		return nil, nil
	}
	return cur.Last()
}

// prefixEnd is the smallest key greater than every key with prefix p, or nil
// when there is none (empty prefix or all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Append assigns the next seq (head+1) inside this transaction, so the log
// has no gaps: if this request is undone, the seq goes back to the next one.
func (t *tx) Append(tenant string, e *inbox.Event) error {
	if err := t.check(true); err != nil {
		return err
	}
	if tenant == "" {
		return errors.New("append: empty tenant")
	}
	if e == nil {
		return errors.New("append: nil event")
	}
	head, err := t.Head(tenant)
	if err != nil {
		return err
	}
	mark := len(t.undo)
	e.Seq, e.TenantID = head+1, tenant
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	raw := e.AppendJSON(nil)
	top := tenantBucket(tenant)
	eb, err := t.writeBucket(top, bucketEvents)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	// The log only grows at its end, so full pages (not bbolt's half-full
	// splits) halve its size and the pages each commit rewrites. bbolt reuses
	// this bucket handle for the rest of the transaction, so it sticks.
	eb.FillPercent = 1.0
	if err := t.put(top, bucketEvents, seqKey(e.Seq), raw); err != nil {
		return fmt.Errorf("append event %d: %w", e.Seq, err)
	}
	if err := t.put(top, bucketMeta, keyHead, seqKey(e.Seq)); err != nil {
		// Never leave an event past the head, even if fn ignores this error.
		if uerr := t.undoTo(mark); uerr != nil {
			return fmt.Errorf("append: set head %d: %w (undo: %v)", e.Seq, err, uerr)
		}
		return fmt.Errorf("append: set head %d: %w", e.Seq, err)
	}
	t.events = append(t.events, *e)
	return nil
}

func (t *tx) Head(tenant string) (uint64, error) {
	if err := t.check(false); err != nil {
		return 0, err
	}
	b := t.readBucket(tenantBucket(tenant), bucketMeta)
	if b == nil {
		return 0, nil
	}
	v := b.Get(keyHead)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("head of tenant %q: corrupt value (%d bytes)", tenant, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
