package ws_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onebox/onebox/internal/ws"
	"github.com/onebox/onebox/internal/ws/wstest"
)

// TestResumeSeesEverySeqOnceInOrder is the stream's main property: while
// several writers commit events concurrently, a client that keeps dropping
// its socket at random points (mid-replay, mid-live, right after welcome)
// and resuming with since=<last seq seen> sees 1..head exactly once, in
// order.
func TestResumeSeesEverySeqOnceInOrder(t *testing.T) {
	checkLeaks(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	e := wstest.NewEnv(t, wstest.Options{WS: ws.Options{ReplayPage: 7}})
	tok := e.Backend.AddSession("A", "a1", "k1")
	other := e.Backend.AddSession("B", "b1", "k2") // noise in another tenant

	const writers, perWriter = 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		wrng := rand.New(rand.NewPCG(seed+uint64(w)+1, 7))
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; {
				n := 1 + wrng.IntN(3)
				e.Backend.Publish("A", n)
				if wrng.IntN(5) == 0 {
					e.Backend.Publish("B", 1)
				}
				i += n
				if wrng.IntN(8) == 0 {
					// Pace the writers so the reader resumes against a
					// log that is still growing.
					time.Sleep(time.Duration(wrng.IntN(300)) * time.Microsecond)
				}
			}
		}()
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()
	noise, _ := e.Connect(t, other, 0)

	var last uint64
	resumes, resets := 0, 0
	for {
		done := false
		select {
		case <-writing:
			done = true
		default:
		}
		if done && last == e.Backend.Head("A") {
			break
		}
		resumes++
		c := wstest.Start(e.Dial(t, nil, nil))
		c.Send(t, wstest.Hello{Type: "hello", Token: tok, Since: last})
		w := c.Next(t)
		if w.Type != "welcome" || w.Head < last {
			t.Fatalf("resume %d since %d: first frame %s", resumes, last, w.Raw)
		}
		budget := rng.IntN(80)
	reading:
		for range budget {
			select {
			case <-writing:
				if last == e.Backend.Head("A") {
					break reading // nothing more will come
				}
			default:
			}
			f, err := c.NextWithin(wstest.Wait)
			if err != nil {
				if websocket.CloseStatus(c.Err()) == 4008 {
					break reading // slow consumer: resume, as a client would
				}
				t.Fatalf("resume %d since %d: %v", resumes, last, err)
			}
			switch f.Type {
			case "event":
				if f.Event.Seq != last+1 {
					t.Fatalf("resume %d: got seq %d after %d", resumes, f.Event.Seq, last)
				}
				last = f.Event.Seq
			case "reset":
				resets++
				t.Fatalf("unexpected reset: %s", f.Raw)
			case "presence":
			default:
				t.Fatalf("unexpected frame %s", f.Raw)
			}
		}
		if rng.IntN(2) == 0 {
			_ = c.Conn.Close(websocket.StatusNormalClosure, "")
		}
		c.Close()
	}
	if want := uint64(writers * perWriter); last < want {
		t.Fatalf("saw up to seq %d, want at least %d", last, want)
	}
	t.Logf("%d events seen through %d sockets", last, resumes)
	if resumes < 10 {
		t.Errorf("only %d resumes; the property was barely exercised", resumes)
	}
	// The other tenant's socket saw only its own events.
	for range e.Backend.Head("B") {
		if ev := noise.NextEvent(t); wstest.EventTenant(ev) != "B" {
			t.Fatalf("tenant B socket got an event of %q", wstest.EventTenant(ev))
		}
	}
}
