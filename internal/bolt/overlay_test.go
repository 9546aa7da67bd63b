package bolt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestFlatten: layers merged pairwise give what merging them one by one
// gives: every key once, sorted, the newest layer's value winning.
func TestFlatten(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 9 {
		var ls []layer // newest first
		want := map[string]string{}
		for i := range n {
			seen := map[string]bool{}
			var l layer
			for range rng.IntN(40) {
				k := fmt.Sprintf("k%03d", rng.IntN(100))
				if seen[k] {
					continue
				}
				seen[k] = true
				l = append(l, oentry{key: k, val: []byte(fmt.Sprintf("layer %d", i))})
			}
			slices.SortFunc(l, func(a, b oentry) int { return strings.Compare(a.key, b.key) })
			ls = append(ls, l)
		}
		for i := len(ls) - 1; i >= 0; i-- {
			for _, e := range ls[i] {
				want[e.key] = string(e.val)
			}
		}
		got := flatten(ls)
		if len(got) != len(want) {
			t.Fatalf("%d layers: %d entries, want %d", n, len(got), len(want))
		}
		for i, e := range got {
			if i > 0 && got[i-1].key >= e.key {
				t.Fatalf("%d layers: keys out of order at %d: %q then %q", n, i, got[i-1].key, e.key)
			}
			if string(e.val) != want[e.key] {
				t.Fatalf("%d layers: %q = %q, want %q (newest wins)", n, e.key, e.val, want[e.key])
			}
		}
	}
}

// TestOverlayMergesKeepLookupsRightAndLayersFew: group commits arriving one
// after another as layers of varied sizes. The view must answer every key
// with its newest value, count its entries right, keep each layer sorted
// and unique, and hold few layers however many commits came.
func TestOverlayMergesKeepLookupsRightAndLayersFew(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	v := &oview{}
	want := map[string]string{}
	most := 0
	for seq := uint64(1); seq <= 3000; seq++ {
		seen := map[string]bool{}
		var l layer
		for range 1 + rng.IntN(300) {
			k := fmt.Sprintf("t\x00c\x00k%05d", rng.IntN(20000))
			if seen[k] {
				continue
			}
			seen[k] = true
			val := fmt.Sprintf("v%d", seq)
			l = append(l, oentry{key: k, val: []byte(val), h: keyHash(k)})
			want[k] = val
		}
		slices.SortFunc(l, func(a, b oentry) int { return strings.Compare(a.key, b.key) })
		v = v.withLayer(l, seq)
		most = max(most, len(v.active))
	}
	size := 0
	for i, ol := range v.active {
		size += len(ol.l)
		for j := 1; j < len(ol.l); j++ {
			if ol.l[j-1].key >= ol.l[j].key {
				t.Fatalf("layer %d: keys out of order or repeated at %d", i, j)
			}
		}
	}
	if size != v.size {
		t.Fatalf("view counts %d entries, its layers hold %d", v.size, size)
	}
	for k, val := range want {
		got, del, ok := v.get(k)
		if !ok || del || string(got) != val {
			t.Fatalf("%q = %q (found %v), want %q", k, got, ok, val)
		}
	}
	if _, _, ok := v.get("t\x00c\x00absent"); ok {
		t.Fatal("a key never written was found")
	}
	t.Logf("most %d layers, %d entries", most, size)
	// Three layers per tier below maxMerge, plus the large ones.
	if limit := (mergeFanout-1)*tier(maxMerge) + size/maxMerge + 1; most > limit {
		t.Fatalf("up to %d layers at once, want at most %d", most, limit)
	}
}

// TestSortedLayerPacksEntries: a group commit's entries come out sorted,
// with their keys, values and deletions as written, and a value cannot
// grow into its neighbour's bytes.
func TestSortedLayerPacksEntries(t *testing.T) {
	m := map[string]*oentry{}
	for i := range 50 {
		k := fmt.Sprintf("t\x00c\x00k%02d", (i*37)%50)
		e := &oentry{key: k, h: keyHash(k), val: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		if i%7 == 0 {
			e.val, e.del = nil, true
		}
		m[k] = e
	}
	l := sortedLayer(m)
	if len(l) != len(m) {
		t.Fatalf("%d entries, want %d", len(l), len(m))
	}
	for i, e := range l {
		if i > 0 && l[i-1].key >= e.key {
			t.Fatalf("out of order at %d", i)
		}
		want := m[e.key]
		if want == nil || e.del != want.del || string(e.val) != string(want.val) || e.h != want.h {
			t.Fatalf("%q: got %+v, want %+v", e.key, e, want)
		}
		if e.del && e.val != nil {
			t.Fatalf("%q: a deletion carries a value", e.key)
		}
	}
	for i := 0; i+1 < len(l); i++ {
		if l[i].del {
			continue
		}
		next := l[i+1].key
		_ = append(l[i].val, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"...)
		if l[i+1].key != next {
			t.Fatalf("appending to %q's value overwrote the next key", l[i].key)
		}
	}
}
