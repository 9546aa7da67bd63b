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
