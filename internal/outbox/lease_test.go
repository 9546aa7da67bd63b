package outbox

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/jobs"
)

// Two processes on one store, each with its service and outbox worker
// behind the "outbox" lease: every reply is sent once, by the holder, and
// when the holder stops the other process takes the sending over.
func TestOutboxRunsInOneProcessAtATime(t *testing.T) {
	e := newEnv(t)
	svcB, err := inbox.NewService(inbox.Config{Store: e.store, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]*inbox.Service{"a": e.svc, "b": svcB}
	senders := map[string]*fakeSender{"a": newFakeSender(nil), "b": newFakeSender(nil)}
	leaseClock := &fakeClock{t: time.Now()}
	cancels := map[string]context.CancelFunc{}
	stopped := map[string]chan error{}
	for _, name := range []string{"a", "b"} {
		// Wakes do not cross processes: the holder finds replies written
		// through the other process by polling.
		w := New(Config{Service: services[name], Senders: map[string]inbox.Sender{inbox.ChannelDemo: senders[name]},
			Now: e.clock.Now, PollInterval: 5 * time.Millisecond})
		services[name].SetOnOutbound(w.Wake)
		leader := jobs.NewLeader(jobs.LeaderConfig{Store: e.store, Holder: name, TTL: time.Minute,
			Renew: 2 * time.Millisecond, Now: leaseClock.Now})
		ctx, cancel := context.WithCancel(context.Background())
		ch := make(chan error, 1)
		cancels[name], stopped[name] = cancel, ch
		go func() { ch <- leader.Run(ctx, "outbox", w.Run) }()
	}
	stop := func(name string) {
		cancels[name]()
		select {
		case err := <-stopped[name]:
			if err != nil {
				t.Errorf("worker %s: %v", name, err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("worker %s did not stop", name)
		}
	}
	defer func() {
		for name, cancel := range cancels {
			if cancel != nil {
				stop(name)
				cancels[name] = nil
			}
		}
	}()

	convs := []string{e.conv, e.newConversation(t, "+4915100000002"), e.newConversation(t, "+4915100000003")}
	sendBatch := func(from int) []inbox.Message {
		var out []inbox.Message
		for i := range 12 {
			svc := services[[]string{"a", "b"}[i%2]]
			m, _, err := svc.SendMessage(context.Background(), e.p, convs[i%len(convs)],
				inbox.Draft{ClientID: uuid.NewString(), Text: fmt.Sprintf("reply %d", from+i)})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		for _, m := range out {
			e.events.messageStatus(t, m.ID, inbox.MsgSent)
		}
		return out
	}
	// who returns the one process that sent every message, failing on a
	// message sent twice or by both.
	who := func(msgs []inbox.Message) string {
		t.Helper()
		by := map[string]int{}
		for _, m := range msgs {
			a, b := senders["a"].count(m.ID), senders["b"].count(m.ID)
			if a+b != 1 {
				t.Fatalf("message %s sent %d times by a and %d by b, want once", m.ID, a, b)
			}
			if a == 1 {
				by["a"]++
			} else {
				by["b"]++
			}
		}
		if len(by) != 1 {
			t.Fatalf("both processes sent: %v", by)
		}
		for name := range by {
			return name
		}
		return ""
	}

	holder := who(sendBatch(0))
	other := map[string]string{"a": "b", "b": "a"}[holder]
	stop(holder)
	cancels[holder] = nil
	if got := who(sendBatch(100)); got != other {
		t.Fatalf("after %s stopped, %s sent", holder, got)
	}
	for _, s := range senders {
		s.mu.Lock()
		if s.overlap {
			t.Error("one message was being sent twice at once")
		}
		s.mu.Unlock()
	}
}

// The claim a send makes before calling the provider is conditional: of
// two workers racing for one item, exactly one gets a clean claim; the
// other learns that a send is (or was) under way and does not send
// blindly (the channel guard fails or defers it).
func TestBeginSendClaimsOnce(t *testing.T) {
	e := newEnv(t)
	svcB, err := inbox.NewService(inbox.Config{Store: e.store, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	m := e.reply(t, e.conv, "hello")
	item, ok := e.outboxItem(t, m.ID)
	if !ok {
		t.Fatal("no outbox item")
	}
	var wg sync.WaitGroup
	clean := make(chan bool, 2)
	for _, svc := range []*inbox.Service{e.svc, svcB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uncertain, err := svc.BeginSend(context.Background(), item)
			if err != nil {
				t.Error(err)
				return
			}
			clean <- !uncertain
		}()
	}
	wg.Wait()
	close(clean)
	n := 0
	for c := range clean {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d clean claims, want exactly 1", n)
	}
}
