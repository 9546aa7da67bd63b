package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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

// snap is what a reader sees: the bbolt file as of one checkpoint, under
// the overlay oview published with it. The oview is loaded before the bbolt
// transaction begins, so the file is never older than the oview assumes
// (a newer file only repeats what the oview already says).
type snap struct {
	v       *oview
	btx     *bbolt.Tx // read-only
	buckets map[string]*bbolt.Bucket
}

// bucket returns nil when the bucket does not exist in the file, which
// readers treat as empty.
func (s *snap) bucket(top, sub []byte) *bbolt.Bucket {
	k := bucketKey(top, sub)
	if b, ok := s.buckets[k]; ok {
		return b
	}
	var nb *bbolt.Bucket
	if b := s.btx.Bucket(top); b != nil {
		nb = b.Bucket(sub)
	}
	if s.buckets == nil {
		s.buckets = make(map[string]*bbolt.Bucket)
	}
	s.buckets[k] = nb
	return nb
}

// get returns the value at key, nil when absent.
func (s *snap) get(top, sub, key []byte, vk string) []byte {
	if val, del, ok := s.v.get(vk); ok {
		if del {
			return nil
		}
		return val
	}
	if b := s.bucket(top, sub); b != nil {
		return b.Get(key)
	}
	return nil
}

func bucketKey(top, sub []byte) string { return string(top) + "\x00" + string(sub) }

// wbuf holds a write batch's writes until they are logged: every request
// of the batch sees those of the requests before it. undo lets one
// request's writes be taken back without touching its neighbours'.
type wbuf struct {
	m    map[string]*oentry
	undo []wundo
}

type wundo struct {
	vk   string
	prev *oentry // nil: the buffer did not hold the key
}

func newWbuf() *wbuf { return &wbuf{m: make(map[string]*oentry)} }

// layerOf returns the buffer's entries in bucket (top, sub) as a sorted
// layer, for scans.
func (w *wbuf) layerOf(prefix string) layer {
	var l layer
	for k, e := range w.m {
		if strings.HasPrefix(k, prefix) {
			l = append(l, *e)
		}
	}
	slices.SortFunc(l, func(a, b oentry) int { return strings.Compare(a.key, b.key) })
	return l
}

// tx is one request's oview of the store. In a write batch several tx share
// one snapshot and one write buffer; each keeps its own undo mark and
// events so it can be backed out or published on its own. A tx is not safe
// for concurrent use.
type tx struct {
	sn       *snap
	w        *wbuf // nil in read-only transactions
	writable bool
	done     bool
	mark     int // len(w.undo) when this request started
	events   []inbox.Event
	// writes counts modifications so Scan can notice that the callback
	// changed the buffer under it.
	writes uint64
	// ver, in write transactions, learns every key written (as the group
	// commit's seq) so speculative runs can be checked against it.
	ver *versions
	seq uint64
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

// get returns the current value at key (nil when absent): this batch's
// buffer first, then the snapshot.
func (t *tx) get(top, sub, key []byte) []byte {
	vk := versionKey(top, sub, key)
	if t.w != nil {
		if e, ok := t.w.m[vk]; ok {
			if e.del {
				return nil
			}
			return e.val
		}
	}
	return t.sn.get(top, sub, key, vk)
}

// put and del are the only paths that modify data, so the undo log is
// complete. Values are kept as given: callers hand over fresh slices.
func (t *tx) put(top, sub, key, val []byte) error {
	if len(key) == 0 {
		return errors.New("empty key")
	}
	if len(key) > bbolt.MaxKeySize {
		return fmt.Errorf("key longer than %d bytes", bbolt.MaxKeySize)
	}
	if int64(len(val)) > bbolt.MaxValueSize {
		return fmt.Errorf("value longer than %d bytes", bbolt.MaxValueSize)
	}
	t.set(versionKey(top, sub, key), &oentry{val: val})
	return nil
}

func (t *tx) del(top, sub, key []byte) error {
	if t.get(top, sub, key) == nil {
		return nil
	}
	t.set(versionKey(top, sub, key), &oentry{del: true})
	return nil
}

func (t *tx) set(vk string, e *oentry) {
	e.key, e.h = vk, keyHash(vk)
	t.w.undo = append(t.w.undo, wundo{vk: vk, prev: t.w.m[vk]})
	t.w.m[vk] = e
	t.writes++
	if t.ver != nil {
		t.ver.wrote(e.h, t.seq)
	}
}

// rollback backs this tx's writes out of the batch's buffer, newest first,
// so a key written twice ends at its original value.
func (t *tx) rollback() {
	t.undoTo(t.mark)
	t.events = nil
}

func (t *tx) undoTo(n int) {
	for i := len(t.w.undo) - 1; i >= n; i-- {
		u := t.w.undo[i]
		if u.prev == nil {
			delete(t.w.m, u.vk)
		} else {
			t.w.m[u.vk] = u.prev
		}
	}
	t.w.undo = t.w.undo[:n]
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
	raw := t.get(top, sub, []byte(key))
	if raw == nil {
		return &notFound{coll: c.Name, key: key}
	}
	return decodeInto(c, key, raw, v)
}

func (t *tx) Put(c inbox.Collection, key string, v any) error {
	if err := t.check(true); err != nil {
		return err
	}
	top, sub, err := scope(c)
	if err != nil {
		return err
	}
	raw, err := inbox.EncodeRecord(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", c.Name, key, err)
	}
	if err := t.put(top, sub, []byte(key), raw); err != nil {
		return fmt.Errorf("put %s %q: %w", c.Name, key, err)
	}
	return nil
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
// scanned collection: the scan goes on past the last visited key (records
// the callback itself adds ahead of it may or may not be visited).
func (t *tx) Scan(c inbox.Collection, prefix, after string, reverse bool, fn func(key string, raw []byte) (bool, error)) error {
	if err := t.check(false); err != nil {
		return err
	}
	top, sub, err := scope(c)
	if err != nil {
		return err
	}
	pfx, aft := []byte(prefix), []byte(after)
	if reverse {
		upper := prefixEnd(pfx)
		if len(aft) > 0 && (upper == nil || bytes.Compare(aft, upper) < 0) {
			upper = aft
		}
		return t.scanReverse(top, sub, pfx, upper, fn)
	}
	start := pfx
	if bytes.Compare(aft, pfx) > 0 {
		start = aft
	}
	return t.scanForward(top, sub, pfx, start, aft, fn)
}

type scanFunc = func(key string, raw []byte) (bool, error)

// msrc is one sorted source of a scan: this batch's buffer, an overlay
// layer, or the bbolt bucket. Sources earlier in a scan's list are newer
// and win on equal keys.
type msrc interface {
	seek(k []byte) ([]byte, *oentry)       // first key >= k
	seekBefore(k []byte) ([]byte, *oentry) // last key < k; nil k: the last
	next() ([]byte, *oentry)
	prev() ([]byte, *oentry)
}

// boltSrc reads a bbolt bucket through a cursor. bbolt's keys and values
// stay valid for the whole read transaction.
type boltSrc struct {
	cur *bbolt.Cursor
	e   oentry
}

func (s *boltSrc) wrap(k, v []byte) ([]byte, *oentry) {
	if k == nil {
		return nil, nil
	}
	s.e.val = v
	return k, &s.e
}

func (s *boltSrc) seek(k []byte) ([]byte, *oentry) { return s.wrap(s.cur.Seek(k)) }
func (s *boltSrc) next() ([]byte, *oentry)         { return s.wrap(s.cur.Next()) }
func (s *boltSrc) prev() ([]byte, *oentry)         { return s.wrap(s.cur.Prev()) }

func (s *boltSrc) seekBefore(k []byte) ([]byte, *oentry) {
	if k != nil {
		if kk, _ := s.cur.Seek(k); kk != nil {
			return s.wrap(s.cur.Prev())
		}
	}
	return s.wrap(s.cur.Last())
}

// sources lists the scan's sources, newest first. The buffer's source is
// first, so it can be rebuilt after the callback writes.
func (t *tx) sources(top, sub []byte) []msrc {
	prefix := bucketPrefix(top, sub)
	var srcs []msrc
	if t.w != nil {
		srcs = append(srcs, newLayerSrc(t.w.layerOf(prefix), prefix))
	}
	for _, l := range t.sn.v.layers() {
		srcs = append(srcs, newLayerSrc(l, prefix))
	}
	if b := t.sn.bucket(top, sub); b != nil {
		srcs = append(srcs, &boltSrc{cur: b.Cursor()})
	}
	return srcs
}

type head struct {
	k []byte
	e *oentry
}

func (t *tx) scanForward(top, sub, pfx, start, after []byte, fn scanFunc) error {
	return t.mergeScan(top, sub, pfx, false, func(s msrc) ([]byte, *oentry) {
		k, e := s.seek(start)
		if k != nil && len(after) > 0 && bytes.Equal(k, after) {
			return s.next()
		}
		return k, e
	}, fn)
}

// scanReverse walks down from the exclusive upper bound (nil: unbounded).
func (t *tx) scanReverse(top, sub, pfx, upper []byte, fn scanFunc) error {
	return t.mergeScan(top, sub, pfx, true, func(s msrc) ([]byte, *oentry) {
		return s.seekBefore(upper)
	}, fn)
}

// mergeScan visits the keys with prefix pfx of every source of the bucket
// in order (descending when reverse), starting where first places each
// source: on equal keys the newest source wins, and a deletion hides what
// the older sources hold.
func (t *tx) mergeScan(top, sub, pfx []byte, reverse bool, first func(msrc) ([]byte, *oentry), fn scanFunc) error {
	srcs := t.sources(top, sub)
	heads := make([]head, len(srcs))
	for i, s := range srcs {
		heads[i].k, heads[i].e = first(s)
	}
	step := msrc.next
	if reverse {
		step = msrc.prev
	}
	for {
		win := -1
		for i, h := range heads {
			if h.k == nil || !bytes.HasPrefix(h.k, pfx) {
				continue
			}
			if win < 0 {
				win = i
				continue
			}
			if c := bytes.Compare(h.k, heads[win].k); !reverse && c < 0 || reverse && c > 0 {
				win = i
			}
		}
		if win < 0 {
			return nil
		}
		key, e := heads[win].k, heads[win].e
		val, del := e.val, e.del
		for i := range heads {
			if i != win && heads[i].k != nil && bytes.Equal(heads[i].k, key) {
				heads[i].k, heads[i].e = step(srcs[i])
			}
		}
		heads[win].k, heads[win].e = step(srcs[win])
		if del {
			continue
		}
		writes := t.writes
		if more, err := fn(string(key), val); err != nil || !more {
			return err
		}
		if t.writes != writes && t.w != nil {
			// The callback wrote: only the buffer changed, so its source is
			// rebuilt and placed just past the key visited.
			last := bytes.Clone(key)
			srcs[0] = newLayerSrc(t.w.layerOf(bucketPrefix(top, sub)), bucketPrefix(top, sub))
			if reverse {
				heads[0].k, heads[0].e = srcs[0].seekBefore(last)
			} else if heads[0].k, heads[0].e = srcs[0].seek(last); heads[0].k != nil && bytes.Equal(heads[0].k, last) {
				heads[0].k, heads[0].e = srcs[0].next()
			}
		}
	}
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
	e.Seq, e.TenantID = head+1, tenant
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	raw := e.AppendJSON(nil)
	top := tenantBucket(tenant)
	if err := t.put(top, bucketEvents, seqKey(e.Seq), raw); err != nil {
		return fmt.Errorf("append event %d: %w", e.Seq, err)
	}
	if err := t.put(top, bucketMeta, keyHead, seqKey(e.Seq)); err != nil {
		return fmt.Errorf("append: set head %d: %w", e.Seq, err)
	}
	t.events = append(t.events, *e)
	return nil
}

func (t *tx) Head(tenant string) (uint64, error) {
	if err := t.check(false); err != nil {
		return 0, err
	}
	v := t.get(tenantBucket(tenant), bucketMeta, keyHead)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("head of tenant %q: corrupt value (%d bytes)", tenant, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// decodeInto decodes a stored record into v; a nil v only wanted to know
// it exists. A *json.RawMessage gets the bytes as they are: the store
// wrote them from a valid encoding, and callers that keep their own
// decoded copies (the inbox's record cache) would otherwise pay for a
// validation pass on every read.
func decodeInto(c inbox.Collection, key string, raw []byte, v any) error {
	switch v := v.(type) {
	case nil:
		return nil
	case *json.RawMessage:
		*v = append((*v)[:0], raw...)
		return nil
	case *string:
		// Index records hold one id as a JSON string; most need no
		// unescaping.
		if s, ok := plainJSONString(raw); ok {
			*v = s
			return nil
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s %q: %w", c.Name, key, err)
	}
	return nil
}

// plainJSONString reads a JSON string that has no escapes, control
// characters or invalid UTF-8 (what encoding/json writes for ids); ok is
// false for anything else, which the caller decodes the ordinary way.
func plainJSONString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	for _, b := range body {
		if b < 0x20 || b == '"' || b == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(body) {
		return "", false
	}
	return string(body), true
}

// notFound is inbox.ErrNotFound naming the collection and key. Most reads
// during ingest are lookups expected to miss (is this provider message id
// new?), and formatting an error for each was a measurable share of them:
// the text is only built if someone asks for it.
type notFound struct{ coll, key string }

func (e *notFound) Error() string {
	return fmt.Sprintf("%s %q: %v", e.coll, e.key, inbox.ErrNotFound)
}

func (e *notFound) Unwrap() error { return inbox.ErrNotFound }
