package bolt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onebox/onebox/internal/inbox"

	bbolt "go.etcd.io/bbolt"
)

// Speculation: the single committer is what keeps every write serial, and
// at high ingest it is the bottleneck; most of its time went into running
// the units of work themselves (decoding the records they read, encoding
// what they write). Speculate runs a unit of work in the caller's goroutine
// instead, on a read snapshot, noting every key it reads and buffering what
// it writes. The committer then only has to check that none of those keys
// was written after the snapshot (a map lookup each) and copy the buffered
// writes in. When a key did change, or the unit does something speculation
// cannot follow (a Scan, Head), the committer runs it again the ordinary
// way on the current state, so the outcome is always as if it ran alone.
// That second run is why fn must be safe to run more than once.

// errNotSpeculative marks a unit of work that must run on the committer.
var errNotSpeculative = errors.New("unit of work needs the writer")

// versionWindow is how many commits a speculation may lag behind and still
// be checked; older snapshots are simply run again on the committer.
const versionWindow = 256

// spec is what a speculative run produced, for the committer to check and
// apply.
type spec struct {
	gen    uint64   // store generation (Compact starts a new one)
	seq    uint64   // the snapshot's last group commit
	reads  []uint64 // keyHash of every key read
	writes []specWrite
	events []*inbox.Event
	tenant []string // events[i]'s tenant
	err    error    // fn's own error, valid only if the reads still hold
}

type specWrite struct {
	vk  string // versionKey(top, sub, key), made once for the speculation and the committer
	val []byte // nil: delete
}

// versions remembers, for recently written keys, the transaction that last
// wrote them. Two generations of maps rotate so nothing has to be swept: a
// key is found in cur or prev, and a snapshot older than the start of prev
// cannot be checked. Only the committer touches it (and Compact, which
// excludes the committer).
//
// Keys are known by their 64-bit hash: maps without pointers cost the
// garbage collector nothing to scan and keep no key strings alive. Two keys
// with one hash can only make a check fail that would have passed, and the
// committer then runs the unit of work again: slower, never wrong.
type versions struct {
	cur, prev map[uint64]uint64
	// curFrom is the first transaction recorded in cur; horizon the first
	// recorded in prev. A snapshot has seen every transaction up to its own
	// id, so one older than horizon-1 may have missed writes the maps no
	// longer hold.
	curFrom, horizon uint64
}

func (v *versions) reset(txid uint64) {
	v.cur = make(map[uint64]uint64)
	v.prev = nil
	v.curFrom, v.horizon = txid, txid
}

func (v *versions) wrote(key uint64, txid uint64) {
	if v.cur == nil {
		v.reset(txid)
	}
	v.cur[key] = txid
}

// rotate starts a new generation every versionWindow transactions.
func (v *versions) rotate(txid uint64) {
	if v.cur == nil {
		v.reset(txid)
		return
	}
	if txid-v.curFrom >= versionWindow {
		v.prev, v.cur = v.cur, make(map[uint64]uint64, len(v.cur))
		v.horizon, v.curFrom = v.curFrom, txid
	}
}

// unchanged reports whether none of keys was written after snapshot txid.
func (v *versions) unchanged(keys []uint64, txid uint64) bool {
	if v.cur == nil {
		return true // nothing written since the store opened
	}
	if txid+1 < v.horizon {
		return false
	}
	for _, k := range keys {
		if w, ok := v.cur[k]; ok {
			if w > txid {
				return false
			}
			continue
		}
		if w, ok := v.prev[k]; ok && w > txid {
			return false
		}
	}
	return true
}

func versionKey(top, sub, key []byte) string {
	b := make([]byte, 0, len(top)+len(sub)+len(key)+2)
	b = append(b, top...)
	b = append(b, 0)
	b = append(b, sub...)
	b = append(b, 0)
	b = append(b, key...)
	return string(b)
}

// Speculate is Update for units of work that are safe to run more than once
// (only the last run's writes and side effects on its own variables count):
// fn first runs in the caller's goroutine on a snapshot, and the committer
// only checks and applies its result, running fn again itself when what fn
// read has changed since. Durability and the outcome are Update's.
func (s *Store) Speculate(ctx context.Context, fn func(inbox.Tx) error) error {
	if fn == nil {
		return errors.New("update: nil fn")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.inflight.Add(1)
	sp := s.speculate(fn)
	r := &request{fn: fn, spec: sp, res: make(chan error, 1)}
	err := s.enqueue(ctx, r)
	s.inflight.Add(-1)
	if err != nil {
		return err
	}
	select {
	case err := <-r.res:
		return err
	case <-ctx.Done():
		r.state.CompareAndSwap(reqQueued, reqCancelled)
		return ctx.Err()
	}
}

// speculate runs fn on a snapshot; nil means it must run on the committer.
func (s *Store) speculate(fn func(inbox.Tx) error) *spec {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.isClosed() {
		return nil
	}
	sn, err := s.snapshot()
	if err != nil {
		return nil
	}
	defer sn.close()
	t := &specTx{sn: sn, sp: &spec{gen: s.gen, seq: sn.v.seq}, overlay: map[string]int{}}
	fnErr, ok := t.run(fn)
	t.done = true
	if !ok || t.unsupported {
		return nil
	}
	t.sp.err = fnErr
	if fnErr != nil {
		t.sp.writes, t.sp.events, t.sp.tenant = nil, nil, nil
	}
	return t.sp
}

// specTx is the Tx a speculative run sees: the snapshot under its own
// buffered writes.
type specTx struct {
	sn *snap
	sp *spec
	// overlay indexes sp.writes by version key: the latest write wins.
	overlay     map[string]int
	unsupported bool
	done        bool
}

var _ inbox.Tx = (*specTx)(nil)

// run calls fn; ok is false when it panicked (the committer's run reports
// panics properly).
func (t *specTx) run(fn func(inbox.Tx) error) (err error, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
		}
	}()
	return fn(t), true
}

func (t *specTx) check() error {
	if t.done {
		return errFinished
	}
	if t.unsupported {
		return errNotSpeculative
	}
	return nil
}

func (t *specTx) Get(c inbox.Collection, key string, v any) error {
	if err := t.check(); err != nil {
		return err
	}
	top, sub, err := scope(c)
	if err != nil {
		return err
	}
	vk := versionKey(top, sub, []byte(key))
	var raw []byte
	if i, ok := t.overlay[vk]; ok {
		raw = t.sp.writes[i].val
	} else {
		t.sp.reads = append(t.sp.reads, keyHash(vk))
		raw = t.sn.get(top, sub, []byte(key), vk)
	}
	if raw == nil {
		return &notFound{coll: c.Name, key: key}
	}
	return decodeInto(c, key, raw, v)
}

func (t *specTx) Put(c inbox.Collection, key string, v any) error {
	if err := t.check(); err != nil {
		return err
	}
	top, sub, err := scope(c)
	if err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return fmt.Errorf("put %s %q: %w", c.Name, key, err)
	}
	raw, err := inbox.EncodeRecord(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", c.Name, key, err)
	}
	if err := checkValue(raw); err != nil {
		return fmt.Errorf("put %s %q: %w", c.Name, key, err)
	}
	t.write(top, sub, key, raw)
	return nil
}

func (t *specTx) Delete(c inbox.Collection, key string) error {
	if err := t.check(); err != nil {
		return err
	}
	top, sub, err := scope(c)
	if err != nil {
		return err
	}
	t.write(top, sub, key, nil)
	return nil
}

func (t *specTx) write(top, sub []byte, key string, val []byte) {
	vk := versionKey(top, sub, []byte(key))
	if i, ok := t.overlay[vk]; ok {
		t.sp.writes[i].val = val
		return
	}
	t.overlay[vk] = len(t.sp.writes)
	t.sp.writes = append(t.sp.writes, specWrite{vk: vk, val: val})
}

// checkKey refuses what bbolt would refuse at apply time, so a checked
// speculation cannot fail on the committer.
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if len(key) > bbolt.MaxKeySize {
		return fmt.Errorf("key longer than %d bytes", bbolt.MaxKeySize)
	}
	return nil
}

// checkValue likewise refuses what the writer would.
func checkValue(val []byte) error {
	if int64(len(val)) > bbolt.MaxValueSize {
		return fmt.Errorf("value longer than %d bytes", bbolt.MaxValueSize)
	}
	return nil
}

// Scan and Head read ranges or the log head, which a key-by-key check does
// not cover: such units run on the committer.
func (t *specTx) Scan(inbox.Collection, string, string, bool, func(string, []byte) (bool, error)) error {
	t.unsupported = true
	return errNotSpeculative
}

func (t *specTx) Head(string) (uint64, error) {
	t.unsupported = true
	return 0, errNotSpeculative
}

// Append records the event; its seq is assigned when the committer applies
// the writes, which is what keeps concurrent writers of one tenant from
// conflicting over the head.
func (t *specTx) Append(tenant string, e *inbox.Event) error {
	if err := t.check(); err != nil {
		return err
	}
	if tenant == "" {
		return errors.New("append: empty tenant")
	}
	if e == nil {
		return errors.New("append: nil event")
	}
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	t.sp.events = append(t.sp.events, e)
	t.sp.tenant = append(t.sp.tenant, tenant)
	return nil
}

// apply copies a checked speculation into the batch's transaction. Writes go
// through put and del, so the undo log and the version map stay complete.
func (t *tx) apply(sp *spec) error {
	if err := t.check(true); err != nil {
		return err
	}
	for _, w := range sp.writes {
		if w.val != nil {
			// specTx.Put checked the key and the value's size: the
			// committer, which every writer waits for, does not again.
			t.set(w.vk, &oentry{val: w.val})
			continue
		}
		top, sub, key, ok := splitVersionKey(w.vk)
		if !ok {
			return fmt.Errorf("apply: malformed key %q", w.vk)
		}
		if err := t.del(top, sub, key); err != nil {
			return fmt.Errorf("apply %q/%q %q: %w", top, sub, key, err)
		}
	}
	for i, e := range sp.events {
		if err := t.Append(sp.tenant[i], e); err != nil {
			return err
		}
	}
	return nil
}

// Speculated counts speculative runs applied as they were, without running
// their unit of work again on the committer.
func (s *Store) Speculated() uint64 { return s.speculated.Load() }
