package bolt

import (
	"slices"
	"sort"
	"strings"
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
}

// layer is a sorted run of entries with unique keys.
type layer []oentry

// oview is one published state of the overlay. Layers are searched newest
// first: active before frozen. frozen is being copied into bbolt by the
// checkpointer; once it is there a oview without it is published.
type oview struct {
	active []layer // newest first
	frozen []layer // newest first
	seq    uint64  // last group commit included
	size   int     // entries in active, to decide when to checkpoint
}

// get reports the overlay's value for vk; ok is false when the overlay does
// not know the key and bbolt decides.
func (v *oview) get(vk string) (val []byte, del, ok bool) {
	for _, ls := range [2][]layer{v.active, v.frozen} {
		for _, l := range ls {
			if e, found := l.find(vk); found {
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
	out = append(out, v.active...)
	return append(out, v.frozen...)
}

// withLayer returns the oview after one more group commit. Layers of
// similar size are merged so a lookup checks only a logarithmic number of
// them; merging builds new slices, so older views stay intact.
func (v *oview) withLayer(l layer, seq uint64) *oview {
	nv := &oview{frozen: v.frozen, seq: seq, size: v.size + len(l)}
	active := make([]layer, 0, len(v.active)+1)
	active = append(active, l)
	active = append(active, v.active...)
	for len(active) >= 2 && 2*len(active[0]) >= len(active[1]) {
		m := mergeLayers(active[0], active[1])
		nv.size -= len(active[0]) + len(active[1]) - len(m)
		active = append([]layer{m}, active[2:]...)
	}
	nv.active = active
	return nv
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

// flatten merges layers given newest first into one.
func flatten(ls []layer) layer {
	var out layer
	for i := len(ls) - 1; i >= 0; i-- {
		out = mergeLayers(ls[i], out)
	}
	return out
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
	return []byte(e.key[s.plen:]), e
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
