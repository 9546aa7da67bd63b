package inbox

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestDecodedCacheHitsOnlyOnSameBytes: a remembered value is handed out
// only for the very bytes it came from, as a copy the caller may change.
func TestDecodedCacheHitsOnlyOnSameBytes(t *testing.T) {
	d := newDecodedCache(64, cloneConversation)
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	c := Conversation{ID: "c1", Status: StatusOpen, Labels: []string{"vip"}, SnoozedUntil: &at,
		LastMessage: &Message{ID: "m1", Text: "hello", Media: &Media{ID: "x"}}}
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	d.put("t/c1", raw, c, nil)

	if _, ok := d.get("t/c1", append(raw[:len(raw):len(raw)], ' ')); ok {
		t.Fatal("hit for different bytes")
	}
	if _, ok := d.get("t/c2", raw); ok {
		t.Fatal("hit for another key")
	}
	got, ok := d.get("t/c1", raw)
	if !ok || got.LastMessage.Text != "hello" || got.Labels[0] != "vip" {
		t.Fatalf("miss or wrong value for the same bytes: %v %+v", ok, got)
	}
	// What a caller changes in its copy must not reach the cache.
	got.Labels[0] = "changed"
	got.LastMessage.Text = "changed"
	got.LastMessage.Media.ID = "changed"
	*got.SnoozedUntil = at.Add(time.Hour)
	c.Labels[0] = "changed by the writer"
	again, _ := d.get("t/c1", raw)
	if again.Labels[0] != "vip" || again.LastMessage.Text != "hello" || again.LastMessage.Media.ID != "x" || !again.SnoozedUntil.Equal(at) {
		t.Fatalf("cache changed through a copy: %+v", again)
	}

	// A decode of changed bytes replaces the entry.
	c2 := c
	c2.Labels, c2.Status = []string{"b"}, StatusResolved
	raw2, _ := json.Marshal(c2)
	v, err := d.decode("t/c1", raw2, nil)
	if err != nil || v.Status != StatusResolved {
		t.Fatalf("decode of new bytes: %+v %v", v, err)
	}
	if _, ok := d.get("t/c1", raw); ok {
		t.Fatal("old bytes still hit after the record changed")
	}
	if _, err := d.decode("t/bad", []byte("{"), nil); err == nil {
		t.Fatal("bad bytes decoded")
	}
	if _, ok := d.get("t/bad", []byte("{")); ok {
		t.Fatal("bad bytes remembered")
	}

	d.clear()
	if _, ok := d.get("t/c1", raw2); ok {
		t.Fatal("hit after clear")
	}
}

// TestDecodedCacheIsBounded: however many records pass through, the cache
// keeps at most about its size.
func TestDecodedCacheIsBounded(t *testing.T) {
	const size = 100
	d := newDecodedCache(size, func(c Contact) Contact { return c })
	for i := range 50 * size {
		c := Contact{ID: fmt.Sprint(i), Name: "n"}
		raw, _ := json.Marshal(c)
		d.put(c.ID, raw, c, nil)
	}
	n := 0
	for i := range d.shards {
		n += len(d.shards[i].m)
	}
	if limit := decodedShards * (size/decodedShards + 1); n == 0 || n > limit {
		t.Fatalf("%d entries, want 1..%d", n, limit)
	}
}
