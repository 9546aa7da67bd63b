package nats

import (
	"context"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

// sessionTable is the shared store's sessions as every process sees
// them: valid until revoked.
type sessionTable struct {
	mu      sync.Mutex
	revoked map[string]bool // key id
}

func (s *sessionTable) revoke(keyID string) {
	s.mu.Lock()
	s.revoked[keyID] = true
	s.mu.Unlock()
}

func (s *sessionTable) verify(_ context.Context, _ string, sessions []inbox.Session) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	valid := make([]bool, len(sessions))
	for i, sess := range sessions {
		valid[i] = !s.revoked[sess.KeyID]
	}
	return valid, nil
}

// A key is revoked while the process holding its socket is cut off from
// NATS: the revocation's message is lost (the revoking process has no
// reconnect buffer, and nobody else would have delivered it). Once the
// process is back, it re-checks its sockets' sessions in the store and
// closes the revoked one with 4401; the others stay open.
func TestRevocationMissedDuringAnOutageClosesTheSocket(t *testing.T) {
	srv := startServer(t, 0)
	port := serverPort(srv)
	store := newLogStore()
	sessions := &sessionTable{revoked: map[string]bool{}}
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{Verify: sessions.verify}, natsgo.ReconnectBufSize(-1))
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{Verify: sessions.verify})
	ben, ana := newSink(), newSink()
	subscribe(t, p2, session(tenantA, "ben", "k-ben"), ben)
	subscribe(t, p2, session(tenantA, "ana", "k-ana"), ana)

	reconnected := make(chan struct{}, 2)
	for _, p := range []*process{p1, p2} {
		p.broker.nc.SetReconnectHandler(func(*natsgo.Conn) {
			go p.broker.resyncAll()
			reconnected <- struct{}{}
		})
	}
	downs := []<-chan natsgo.Status{
		p1.broker.nc.StatusChanged(natsgo.RECONNECTING),
		p2.broker.nc.StatusChanged(natsgo.RECONNECTING),
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	for _, down := range downs {
		select {
		case <-down:
		case <-time.After(wait):
			t.Fatal("a process did not notice the server going away")
		}
	}
	// The revocation as RevokeKey makes it: committed, then announced.
	sessions.revoke("k-ben")
	p1.hub.Disconnect(tenantA, inbox.Match{KeyID: "k-ben"}) // lost

	startServer(t, port)
	for range 2 {
		select {
		case <-reconnected:
		case <-time.After(wait):
			t.Fatal("processes did not reconnect")
		}
	}
	ben.waitFor(t, "ben's socket closed", func() bool { return len(ben.closes) > 0 })
	ben.mu.Lock()
	code := ben.closes[0]
	ben.mu.Unlock()
	if code != hub.CloseRevoked {
		t.Fatalf("close code %d, want %d", code, hub.CloseRevoked)
	}
	// ana's socket is still live: it gets what is committed next.
	p1.hub.Publish(store.commit(tenantA, 1))
	ana.waitSeqs(t, "ana", 1)
	// The check counts what it closed just after closing it.
	waitUntil(t, "the re-check to be counted", func() bool { return p2.hub.Stats().Reverified > 0 })
	if got := p2.hub.Stats().Reverified; got != 1 {
		t.Errorf("Reverified = %d, want 1", got)
	}
}

// A process holding no socket of a tenant reports who is online in it by
// asking the processes that do, without subscribing to the tenant, and
// sees an agent go offline there.
func TestOnlineIsKnownToAProcessWithoutSockets(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{})
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{OnlineCache: time.Millisecond})
	p3 := startProcess(t, "p3", srv.ClientURL(), store, hub.Options{})
	subscribe(t, p1, session(tenantA, "ana", "k1"), newSink())
	ben := subscribe(t, p1, session(tenantA, "ben", "k2"), newSink())
	subscribe(t, p3, session(tenantA, "cy", "k3"), newSink())
	subscribe(t, p3, session(tenantA, "ana", "k4"), newSink())

	start := time.Now()
	got := p2.hub.Online(tenantA)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Online took %s", took)
	}
	if want := "[ana ben cy]"; fmtList(got) != want {
		// Answers later than the window are not counted: a loaded test
		// machine may need a second question.
		waitUntil(t, "p2 to report ana, ben and cy online", func() bool { return fmtList(p2.hub.Online(tenantA)) == want })
	}
	if n := p2.broker.Stats().Tenants; n != 0 {
		t.Errorf("p2 subscribed to %d tenants to answer", n)
	}
	if got := p2.hub.Online(tenantB); len(got) != 0 {
		t.Errorf("online in a tenant with no sockets anywhere: %v", got)
	}
	ben.Close()
	waitUntil(t, "p2 to report ben offline", func() bool { return fmtList(p2.hub.Online(tenantA)) == "[ana cy]" })
}

// Answers are reused for OnlineCache: a busy caller does not wait for the
// window each time.
func TestOnlineAnswerIsReused(t *testing.T) {
	srv := startServer(t, 0)
	store := newLogStore()
	p1 := startProcess(t, "p1", srv.ClientURL(), store, hub.Options{})
	p2 := startProcess(t, "p2", srv.ClientURL(), store, hub.Options{OnlineCache: time.Hour})
	subscribe(t, p1, session(tenantA, "ana", "k1"), newSink())
	waitUntil(t, "p2 to report ana online", func() bool { return fmtList(p2.hub.Online(tenantA)) == "[ana]" })
	subscribe(t, p1, session(tenantA, "ben", "k2"), newSink())
	if got := fmtList(p2.hub.Online(tenantA)); got != "[ana]" {
		t.Fatalf("online = %s, want the answer kept for OnlineCache: [ana]", got)
	}
}

func fmtList(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out + "]"
}
