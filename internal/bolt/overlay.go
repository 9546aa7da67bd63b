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

// maxMerge is the largest layer the committer merges into.
const maxMerge = 16 << 10

// withLayer returns the view after one more group commit. Layers of
// similar size are merged so a lookup checks only a logarithmic number of
// them; merging builds new slices, so older views stay intact.
func (v *oview) withLayer(l layer, seq uint64) *oview {
	nv := &oview{frozen: v.frozen, seq: seq, size: v.size + len(l)}
	active := make([]olayer, 0, len(v.active)+1)
	active = append(active, newOlayer(l))
	active = append(active, v.active...)
	// Only small layers merge: the committer does the merging, and copying
	// a large layer would stall every writer for its length. Bloom filters
	// keep the few large layers cheap to pass over.
	for len(active) >= 2 && 2*len(active[0].l) >= len(active[1].l) && len(active[1].l) < maxMerge {
		m := mergeLayers(active[0].l, active[1].l)
		nv.size -= len(active[0].l) + len(active[1].l) - len(m)
		active = append([]olayer{newOlayer(m)}, active[2:]...)
	}
	nv.active = active
	return nv
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

// mergeLayers merges two sorted layers; newer wins on equal keys.
func mergeLayers(newer, older layer) layer {
	out := make(layer, 0, len(newer)+len(older))
	i, j := 0, 0
	for i < len(newer) && j < len(older) {
		switch c := strings.Compare(newer[i].key, older[j].key); {
		case c < 0:
			out = append(out, newer[i])
			i++
		case c > 0:
			out = append(out, older[j])
			j++
		default:
			out = append(out, newer[i])
			i++
			j++
		}
	}
	out = append(out, newer[i:]...)
	return append(out, older[j:]...)
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
// Neighbours merge pairwise, round after round, so each entry is copied
// about log2(len(ls)) times rather than once per layer newer than it.
func flatten(ls []layer) layer {
	if len(ls) == 0 {
		return nil
	}
	ls = slices.Clone(ls)
	for len(ls) > 1 {
		next := ls[:0]
		for i := 0; i < len(ls); i += 2 {
			if i+1 == len(ls) {
				next = append(next, ls[i])
				break
			}
			next = append(next, mergeLayers(ls[i], ls[i+1]))
		}
		ls = next
	}
	return ls[0]
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

// sortedLayer turns a write buffer's entries into a layer.
func sortedLayer(m map[string]*oentry) layer {
	l := make(layer, 0, len(m))
	for _, e := range m {
		l = append(l, *e)
	}
	slices.SortFunc(l, func(a, b oentry) int { return strings.Compare(a.key, b.key) })
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
