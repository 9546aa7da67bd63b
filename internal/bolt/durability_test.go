package bolt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "onebox.db")
	ctx := context.Background()
	c := inbox.Collection{Tenant: "a", Name: "things"}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx inbox.Tx) error {
		for range 3 {
			if err := tx.Append("a", &inbox.Event{Type: "x"}); err != nil {
				return err
			}
		}
		return tx.Put(c, "k", rec{V: "kept"})
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var seq uint64
	update(t, s, func(tx inbox.Tx) error {
		var got rec
		if err := tx.Get(c, "k", &got); err != nil || got.V != "kept" {
			return fmt.Errorf("record after reopen: %+v, %v", got, err)
		}
		e := &inbox.Event{Type: "y"}
		err := tx.Append("a", e)
		seq = e.Seq
		return err
	})
	if seq != 4 {
		t.Fatalf("Append after reopen got seq %d, want 4", seq)
	}
	if _, head, err := s.Events(ctx, "a", 0, 0); err != nil || head != 4 {
		t.Fatalf("head = %d, %v", head, err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "onebox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	s2, err := Open(path, Options{})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("error = %v, want it to say the file is locked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(filepath.Join(dir, "onebox.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
}

// TestCrash kills a writer with SIGKILL mid-stream: every seq it was told was
// committed must be on disk after reopening, with no gap before the head.
func TestCrash(t *testing.T) {
	if os.Getenv("BOLT_CRASH_CHILD") == "1" {
		crashChild(os.Getenv("BOLT_CRASH_PATH"))
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "onebox.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BOLT_CRASH_CHILD=1", "BOLT_CRASH_PATH="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	acked := map[uint64]bool{}
	sc := bufio.NewScanner(out)
	for len(acked) < 300 && sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			seq, err := strconv.ParseUint(n, 10, 64)
			if err != nil {
				t.Fatalf("child printed %q", sc.Text())
			}
			acked[seq] = true
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d writes; stderr:\n%s", len(acked), stderr.String())
	}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	events, head, err := s.Events(context.Background(), "a", 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(events)) != head {
		t.Fatalf("%d events for head %d", len(events), head)
	}
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Fatalf("gap: event %d has seq %d", i, e.Seq)
		}
	}
	view(t, s, func(tx inbox.Tx) error {
		for seq := range acked {
			if seq > head {
				t.Errorf("acknowledged seq %d lost (head %d)", seq, head)
			}
			// The record written with the event is there too: a commit is
			// all of a request's writes or none.
			if err := tx.Get(inbox.Collection{Tenant: "a", Name: "messages"}, strconv.FormatUint(seq, 10), nil); err != nil {
				t.Errorf("record of acknowledged seq %d: %v", seq, err)
			}
		}
		return nil
	})
	t.Logf("%d acknowledged, head %d after SIGKILL", len(acked), head)
}

// crashChild writes until killed, printing each seq once Update returned.
func crashChild(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	for range 8 {
		go func() {
			for {
				var seq uint64
				err := s.Update(context.Background(), func(tx inbox.Tx) error {
					e := &inbox.Event{Type: inbox.EventMessageCreated, Data: []byte(`{"text":"hello"}`)}
					if err := tx.Append("a", e); err != nil {
						return err
					}
					seq = e.Seq
					return tx.Put(inbox.Collection{Tenant: "a", Name: "messages"}, strconv.FormatUint(seq, 10), rec{V: strings.Repeat("m", 300)})
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d\n", seq)
				mu.Unlock()
			}
		}()
	}
	select {}
}
