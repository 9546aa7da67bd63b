package bolt

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// TestOverlayMatchesModel drives random writes, deletions and checkpoints
// against a plain map and checks every read path (Get, Scan in both
// directions with prefixes and after-keys, reads inside a writing unit)
// against it, across the batch buffer, the overlay's layers, frozen layers
// and the file, and again after a reopen that replays the log.
func TestOverlayMatchesModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { overlayModel(t, seed) })
	}
}

func overlayModel(t *testing.T, seed uint64) {
	path := filepath.Join(t.TempDir(), "onebox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	colls := []inbox.Collection{{Tenant: "a", Name: "c1"}, {Tenant: "a", Name: "c2"}, {Tenant: "b", Name: "c1"}, {Name: "g1"}}
	model := map[inbox.Collection]map[string]string{}
	for _, c := range colls {
		model[c] = map[string]string{}
	}
	key := func() string { return fmt.Sprintf("%c%02d", 'a'+rng.IntN(3), rng.IntN(40)) }

	check := func(when string) {
		t.Helper()
		for _, c := range colls {
			want := model[c]
			for range 20 {
				k := key()
				var got string
				err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(c, k, &got) })
				if v, ok := want[k]; ok {
					if err != nil || fmt.Sprintf("%q", got) != v {
						t.Fatalf("%s: Get %v %q = %q, %v; want %q", when, c, k, got, err, v)
					}
				} else if !errors.Is(err, inbox.ErrNotFound) {
					t.Fatalf("%s: Get %v %q = %q, %v; want not found", when, c, k, got, err)
				}
			}
			for _, prefix := range []string{"", "a", "b0", "c", "z"} {
				for _, after := range []string{"", "a10", "b", "c39", "b05"} {
					for _, rev := range []bool{false, true} {
						var got []string
						err := s.View(ctx, func(tx inbox.Tx) error {
							return tx.Scan(c, prefix, after, rev, func(k string, raw []byte) (bool, error) {
								got = append(got, k+"="+string(raw))
								return true, nil
							})
						})
						if err != nil {
							t.Fatal(err)
						}
						exp := modelScan(want, prefix, after, rev)
						if !slices.Equal(got, exp) {
							t.Fatalf("%s: Scan %v prefix %q after %q reverse %v:\n got %v\nwant %v", when, c, prefix, after, rev, got, exp)
						}
					}
				}
			}
		}
	}

	for round := range 60 {
		// A few units per round; some fail and must leave nothing behind.
		for range 1 + rng.IntN(4) {
			c := colls[rng.IntN(len(colls))]
			fail := rng.IntN(5) == 0
			type op struct {
				k, v string
				del  bool
			}
			var ops []op
			for range 1 + rng.IntN(8) {
				o := op{k: key(), v: fmt.Sprintf("%q", fmt.Sprint(round, rng.IntN(1000)))}
				o.del = rng.IntN(3) == 0
				ops = append(ops, o)
			}
			err := s.Update(ctx, func(tx inbox.Tx) error {
				for _, o := range ops {
					if o.del {
						if err := tx.Delete(c, o.k); err != nil {
							return err
						}
						if err := tx.Get(c, o.k, nil); !errors.Is(err, inbox.ErrNotFound) {
							return fmt.Errorf("deleted %q still read inside the unit: %v", o.k, err)
						}
					} else {
						var raw string
						_ = jsonUnquote(o.v, &raw)
						if err := tx.Put(c, o.k, raw); err != nil {
							return err
						}
					}
				}
				if fail {
					return errors.New("unit fails")
				}
				return nil
			})
			if fail {
				if err == nil {
					t.Fatal("a failing unit succeeded")
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range ops {
				if o.del {
					delete(model[c], o.k)
				} else {
					model[c][o.k] = o.v
				}
			}
		}
		switch rng.IntN(6) {
		case 0:
			if err := s.flush(ctx); err != nil {
				t.Fatal(err)
			}
		case 1:
			// Freeze without waiting: reads meet frozen layers too.
			s.nudge()
		}
		if round%10 == 9 {
			check(fmt.Sprintf("round %d", round))
		}
	}
	check("end")
	// A process that dies leaves its log; the next Open replays it.
	s.testCrash.Store(true)
	segs, _ := segments(path)
	if err := s.Close(); err != nil {
		t.Logf("close after pretend crash: %v", err)
	}
	if len(segs) == 0 {
		t.Fatal("no log segment while writes were pending")
	}
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	check("after replay")
}

func jsonUnquote(s string, v *string) error {
	if len(s) < 2 {
		return errors.New("short")
	}
	*v = strings.ReplaceAll(s[1:len(s)-1], `\"`, `"`)
	return nil
}

func modelScan(m map[string]string, prefix, after string, rev bool) []string {
	var keys []string
	for k := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if after != "" && (!rev && k <= after || rev && k >= after) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if rev {
		slices.Reverse(keys)
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + m[k]
	}
	return out
}

// TestLogReplayStopsAtATornRecord: a group commit a crash cut short was
// never acknowledged; replay applies what came before it and opens.
func TestLogReplayStopsAtATornRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "onebox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := inbox.Collection{Tenant: "a", Name: "c"}
	for i := range 3 {
		if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, fmt.Sprint(i), i) }); err != nil {
			t.Fatal(err)
		}
	}
	s.testCrash.Store(true)
	_ = s.Close()
	// The records are in the first segment; the second is the one made
	// ahead of time, still empty.
	segs, err := segments(path)
	if err != nil || len(segs) != 2 {
		t.Fatalf("segments: %v, %v", segs, err)
	}
	// Cut the last record in half.
	data, err := os.ReadFile(segs[0].name)
	if err != nil {
		t.Fatal(err)
	}
	last := lastRecordStart(t, data)
	if err := os.WriteFile(segs[0].name, data[:last+(len(data)-last)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, want := range []bool{true, true, false} {
		err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(c, fmt.Sprint(i), nil) })
		if (err == nil) != want {
			t.Errorf("record %d after replay: %v, want present=%v", i, err, want)
		}
	}
	// The store goes on from there.
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, "next", 1) }); err != nil {
		t.Fatal(err)
	}
}

func lastRecordStart(t *testing.T, data []byte) int {
	t.Helper()
	off, last := segHeader, -1
	for off+walHeader <= len(data) {
		n := int(uint32(data[off])<<24 | uint32(data[off+1])<<16 | uint32(data[off+2])<<8 | uint32(data[off+3]))
		last = off
		off += walHeader + n
	}
	if last < 0 {
		t.Fatal("no record in the segment")
	}
	return last
}

// TestRestoredFileIgnoresTheOldLog: a file put in place of the store (a
// restore) gets a new identity, and the log the replaced store left is
// not replayed onto it.
func TestRestoredFileIgnoresTheOldLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "onebox.db")
	ctx := context.Background()
	c := inbox.Collection{Tenant: "a", Name: "c"}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, "before-backup", 1) }); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(ctx, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, "after-backup", 1) }); err != nil {
		t.Fatal(err)
	}
	s.testCrash.Store(true) // leaves the log with after-backup
	_ = s.Close()
	if segs, _ := segments(path); len(segs) == 0 {
		t.Fatal("no log left behind")
	}
	if err := Detach(backup); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backup, path); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(c, "before-backup", nil) }); err != nil {
		t.Errorf("restored record: %v", err)
	}
	if err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(c, "after-backup", nil) }); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("the replaced store's log was replayed onto the restored file: %v", err)
	}
}

// TestCheckpointIsReported: operators see checkpoints through OnCheckpoint
// (the server's /metrics), with the records each copied into the file.
func TestCheckpointIsReported(t *testing.T) {
	type report struct{ entries int }
	got := make(chan report, 4)
	s, err := Open(filepath.Join(t.TempDir(), "onebox.db"), Options{OnCheckpoint: func(_ time.Duration, n int) { got <- report{n} }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c := inbox.Collection{Tenant: "a", Name: "c"}
	if err := s.Update(ctx, func(tx inbox.Tx) error {
		for i := range 3 {
			if err := tx.Put(c, fmt.Sprint(i), i); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.entries != 3 {
			t.Errorf("checkpoint reported %d entries, want the 3 records written", r.entries)
		}
	default:
		t.Fatal("flush returned before the checkpoint was reported")
	}
}

// TestCloseWithFailingCheckpoints: when the file refuses every checkpoint,
// Close still returns, and the log keeps every acknowledged write for the
// next start.
func TestCloseWithFailingCheckpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "onebox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := inbox.Collection{Tenant: "a", Name: "c"}
	s.testCheckpointFails.Store(true)
	for i := range 3 {
		if err := s.Update(ctx, func(tx inbox.Tx) error { return tx.Put(c, fmt.Sprint(i), i) }); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close hangs while checkpoints fail")
	}
	if segs, _ := segments(path); len(segs) == 0 {
		t.Fatal("the log was removed although its writes never reached the file")
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		if err := s.View(ctx, func(tx inbox.Tx) error { return tx.Get(c, fmt.Sprint(i), nil) }); err != nil {
			t.Errorf("record %d after reopen: %v", i, err)
		}
	}
}
