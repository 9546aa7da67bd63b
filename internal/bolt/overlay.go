package bolt

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"unsafe"
)

// The overlay holds what is durable in the write-ahead log but not yet in
// the bbolt file. A group commit appends its writes to the log with one
// sequential fsync and makes them visible here; a checkpointer later copies
// them into bbolt in one large transaction. Sequential log writes cost a
// fraction of the scattered B-tree pages a bbolt commit syncs, which is what
// bounded ingest when every group commit was a bbolt commit.
//
// Every reader sees bbolt under the overlay. The overlay is immutable once
// published: a reader keeps the *oview it loaded for as long as it reads,
// so it sees one consistent state even while later commits publish newer
// views and the checkpointer moves old layers into bbolt.

// oentry is one key's newest value in a layer. del marks a deletion, so
// an empty value and a removed key stay apart.
type oentry struct {
	key string // versionKey(top, sub, key)
	val []byte
	del bool
	h   uint64 // keyHash(key), computed once for every filter the entry enters
}

// layer is a sorted run of entries with unique keys.
type layer []oentry

// olayer is a layer with a Bloom filter of its keys: most lookups are for
// keys the recent layers do not hold, and the filter answers those without
// a search.
type olayer struct {
	l     layer
	bloom bloom
}

func newOlayer(l layer) olayer {
	b := newBloom(len(l))
	for i := range l {
		b.add(l[i].h)
	}
	return olayer{l: l, bloom: b}
}

// oview is one published state of the overlay. Layers are searched newest
// first: active before frozen. frozen is being copied into bbolt by the
// checkpointer; once it is there a view without it is published.
type oview struct {
	active []olayer // newest first
	frozen []olayer // newest first
	seq    uint64   // last group commit included
	size   int      // entries in active, to decide when to checkpoint
}

// get reports the overlay's value for vk; ok is false when the overlay does
// not know the key and bbolt decides.
func (v *oview) get(vk string) (val []byte, del, ok bool) {
	h := keyHash(vk)
	for _, ls := range [2][]olayer{v.active, v.frozen} {
		for i := range ls {
			if !ls[i].bloom.has(h) {
				continue
			}
			if e, found := ls[i].l.find(vk); found {
				return e.val, e.del, true
			}
		}
	}
	return nil, false, false
}

func (l layer) find(vk string) (oentry, bool) {
	i := sort.Search(len(l), func(i int) bool { return l[i].key >= vk })
	if i < len(l) && l[i].key == vk {
		return l[i], true
	}
	return oentry{}, false
}

// layers lists every layer, newest first.
func (v *oview) layers() []layer {
	out := make([]layer, 0, len(v.active)+len(v.frozen))
	for _, ol := range v.active {
		out = append(out, ol.l)
	}
	for _, ol := range v.frozen {
		out = append(out, ol.l)
	}
	return out
}

// maxMerge is the largest layer the committer merges: the committer does
// the merging, and copying large layers would stall every writer for their
// length. Bloom filters keep the few large layers cheap to pass over.
const maxMerge = 8 << 10

// mergeFanout layers of one tier merge into one layer of the next. Each
// entry is copied once per tier it climbs (about log4 of the overlay's
// size) rather than once per doubling, and a lookup passes over at most
// mergeFanout-1 layers per tier.
const mergeFanout = 4

// tier groups layer sizes by powers of four.
func tier(n int) int { return bits.Len(uint(n)) / 2 }

// withLayer returns the view after one more group commit. Merging builds
// new slices, so older views stay intact.
func (v *oview) withLayer(l layer, seq uint64) *oview {
	nv := &oview{frozen: v.frozen, seq: seq, size: v.size + len(l)}
	active := make([]olayer, 0, len(v.active)+1)
	active = append(active, newOlayer(l))
	active = append(active, v.active...)
	for len(active) >= mergeFanout && mergeable(active[:mergeFanout]) {
		m := mergeRun(plain(active[:mergeFanout]))
		for _, ol := range active[:mergeFanout] {
			nv.size -= len(ol.l)
		}
		nv.size += len(m)
		active = append([]olayer{newOlayer(m)}, active[mergeFanout:]...)
	}
	nv.active = active
	return nv
}

// mergeable reports whether the newest layers, given newest first, form a
// full tier: none larger than the newest's tier, none past maxMerge.
func mergeable(ols []olayer) bool {
	t := tier(len(ols[0].l))
	for _, ol := range ols {
		if len(ol.l) >= maxMerge || tier(len(ol.l)) > t {
			return false
		}
	}
	return true
}

// bloom is a Bloom filter with two probes per key and about ten bits per
// key, so about one lookup in twenty for an absent key searches a layer.
type bloom []uint64

func newBloom(n int) bloom { return make(bloom, (n*10+63)/64+1) }

func (b bloom) add(h uint64) {
	m := uint64(len(b) * 64)
	p1, p2 := h%m, (h>>32|h<<32)%m
	b[p1/64] |= 1 << (p1 % 64)
	b[p2/64] |= 1 << (p2 % 64)
}

func (b bloom) has(h uint64) bool {
	m := uint64(len(b) * 64)
	p1, p2 := h%m, (h>>32|h<<32)%m
	return b[p1/64]&(1<<(p1%64)) != 0 && b[p2/64]&(1<<(p2%64)) != 0
}

// keyHash mixes the key eight bytes at a time (multiply and rotate, as
// FNV-style hashes do per byte): no seed to keep, and keys are not chosen
// by anyone who gains from collisions (they only cost a search).
func keyHash(s string) uint64 {
	const m = 0x9e3779b97f4a7c15
	h := uint64(len(s)) * m
	for len(s) >= 8 {
		h = bits.RotateLeft64((h^binary.LittleEndian.Uint64([]byte(s[:8])))*m, 29)
		s = s[8:]
	}
	var tail uint64
	for i := len(s) - 1; i >= 0; i-- {
		tail = tail<<8 | uint64(s[i])
	}
	h = (h ^ tail) * m
	h ^= h >> 32
	h *= m
	return h ^ h>>29
}

// plain drops the filters.
func plain(ols []olayer) []layer {
	out := make([]layer, len(ols))
	for i, ol := range ols {
		out[i] = ol.l
	}
	return out
}

// flatten merges layers given newest first into one.
func flatten(ls []layer) layer { return mergeRun(ls) }

// mergeRun merges sorted layers, given newest first, into one; of a key's
// entries the newest wins. One pass over a heap of the layers' heads: each
// entry is copied once, however many layers there are.
func mergeRun(ls []layer) layer {
	h := make(mergeHeap, 0, len(ls))
	n := 0
	for age, l := range ls {
		if len(l) > 0 {
			h = append(h, mergeHead{l: l, age: age})
			n += len(l)
		}
	}
	switch len(h) {
	case 0:
		return nil
	case 1:
		return h[0].l // layers never change once made
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	out := make(layer, 0, n)
	for len(h) > 0 {
		top := &h[0]
		e := top.l[top.pos]
		// Equal keys leave the heap newest first: only the first counts.
		if len(out) == 0 || out[len(out)-1].key != e.key {
			out = append(out, e)
		}
		if top.pos++; top.pos == len(top.l) {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		h.down(0)
	}
	return slices.Clip(out)
}

// mergeHead is where mergeRun is in one layer; age orders equal keys
// (0 is the newest layer).
type mergeHead struct {
	l   layer
	pos int
	age int
}

// mergeHeap is a binary min-heap of heads by (key, age).
type mergeHeap []mergeHead

func (h mergeHeap) less(i, j int) bool {
	// One comparison: keys share long bucket prefixes.
	if c := strings.Compare(h[i].l[h[i].pos].key, h[j].l[h[j].pos].key); c != 0 {
		return c < 0
	}
	return h[i].age < h[j].age
}

func (h mergeHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// layerSrc iterates the entries of one layer inside one bucket (those whose
// key starts with the bucket's version-key prefix), with keys relative to
// the bucket.
type layerSrc struct {
	ents layer // the bucket's range only
	plen int
	i    int
}

func newLayerSrc(l layer, bucketPrefix string) *layerSrc {
	lo := sort.Search(len(l), func(i int) bool { return l[i].key >= bucketPrefix })
	hi := lo + sort.Search(len(l)-lo, func(i int) bool { return !strings.HasPrefix(l[lo+i].key, bucketPrefix) })
	return &layerSrc{ents: l[lo:hi], plen: len(bucketPrefix)}
}

func (s *layerSrc) at() (k []byte, e *oentry) {
	if s.i < 0 || s.i >= len(s.ents) {
		return nil, nil
	}
	e = &s.ents[s.i]
	// The key's bytes are shared with the layer, which nobody modifies:
	// a scan step allocates nothing.
	key := e.key[s.plen:]
	return unsafe.Slice(unsafe.StringData(key), len(key)), e
}

// seek positions at the first key >= k.
func (s *layerSrc) seek(k []byte) ([]byte, *oentry) {
	s.i = sort.Search(len(s.ents), func(i int) bool { return s.ents[i].key[s.plen:] >= string(k) })
	return s.at()
}

// seekBefore positions at the last key < k (the last key when k is nil).
func (s *layerSrc) seekBefore(k []byte) ([]byte, *oentry) {
	if k == nil {
		s.i = len(s.ents) - 1
		return s.at()
	}
	s.i = sort.Search(len(s.ents), func(i int) bool { return s.ents[i].key[s.plen:] >= string(k) }) - 1
	return s.at()
}

func (s *layerSrc) next() ([]byte, *oentry) { s.i++; return s.at() }
func (s *layerSrc) prev() ([]byte, *oentry) { s.i--; return s.at() }

// sortedLayer turns a write buffer's entries into a layer. Its keys and
// values are packed into one allocation: between checkpoints the overlay
// holds a few hundred thousand entries, and as two heap objects each they
// were marking work for every garbage collection, which on a busy machine
// is time taken from the writers.
func sortedLayer(m map[string]*oentry) layer {
	l := make(layer, 0, len(m))
	n := 0
	for _, e := range m {
		l = append(l, *e)
		n += len(e.key) + len(e.val)
	}
	slices.SortFunc(l, func(a, b oentry) int { return strings.Compare(a.key, b.key) })
	arena := make([]byte, 0, n)
	for i := range l {
		e := &l[i]
		at := len(arena)
		arena = append(arena, e.key...)
		// The arena is never written again, as a string's bytes must not be.
		e.key = unsafe.String(unsafe.SliceData(arena[at:]), len(e.key))
		if !e.del {
			at = len(arena)
			arena = append(arena, e.val...)
			e.val = arena[at:len(arena):len(arena)]
		}
	}
	return l
}

// bucketPrefix is the version-key prefix of every key in (top, sub).
func bucketPrefix(top, sub []byte) string {
	b := make([]byte, 0, len(top)+len(sub)+2)
	b = append(b, top...)
	b = append(b, 0)
	b = append(b, sub...)
	b = append(b, 0)
	return string(b)
}

// splitVersionKey undoes versionKey.
func splitVersionKey(vk string) (top, sub, key []byte, ok bool) {
	i := strings.IndexByte(vk, 0)
	if i < 0 {
		return nil, nil, nil, false
	}
	j := strings.IndexByte(vk[i+1:], 0)
	if j < 0 {
		return nil, nil, nil, false
	}
	j += i + 1
	return []byte(vk[:i]), []byte(vk[i+1 : j]), []byte(vk[j+1:]), true
}
