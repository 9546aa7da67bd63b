package hub_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/onebox/onebox/internal/hub"
	"github.com/onebox/onebox/internal/inbox"
)

// sessionStore stands in for the store's sessions: every session is valid
// until withdrawn. Each call to verify is announced on calls.
type sessionStore struct {
	mu        sync.Mutex
	withdrawn map[string]bool
	fail      bool
	asked     [][]inbox.Session
	calls     chan struct{}
}

func newSessionStore() *sessionStore {
	return &sessionStore{withdrawn: map[string]bool{}, calls: make(chan struct{}, 16)}
}

func (s *sessionStore) withdraw(hash string) {
	s.mu.Lock()
	s.withdrawn[hash] = true
	s.mu.Unlock()
}

func (s *sessionStore) verify(_ context.Context, _ string, sessions []inbox.Session) ([]bool, error) {
	s.mu.Lock()
	s.asked = append(s.asked, sessions)
	fail := s.fail
	valid := make([]bool, len(sessions))
	for i, sess := range sessions {
		valid[i] = !s.withdrawn[sess.Hash]
	}
	s.mu.Unlock()
	select {
	case s.calls <- struct{}{}:
	default:
	}
	if fail {
		return nil, errors.New("store unavailable")
	}
	return valid, nil
}

func (s *sessionStore) waitCall(t *testing.T) {
	t.Helper()
	select {
	case <-s.calls:
	case <-time.After(wait):
		t.Fatal("the sessions were not re-checked")
	}
}

// After a reported loss the hub re-checks its sockets' sessions, each
// once, and closes with 4401 exactly the sockets whose session was
// withdrawn. Nothing is re-checked while nothing is lost.
func TestResyncRechecksSessions(t *testing.T) {
	store := newSessionStore()
	b := hub.NewLocalBroker()
	h := newHub(t, hub.Options{Broker: b, Verify: store.verify})
	ben, benAgain, ana := newSink(), newSink(), newSink()
	benSession := session("A", "ben", "k-ben")
	subscribe(t, h, benSession, ben, 0)
	subscribe(t, h, benSession, benAgain, 0)
	subscribe(t, h, session("A", "ana", "k-ana"), ana, 0)
	h.Publish(events("A", 1, 2))
	ana.waitEvents(t, 2)
	store.mu.Lock()
	if len(store.asked) != 0 {
		t.Fatalf("sessions re-checked with no loss: %v", store.asked)
	}
	store.mu.Unlock()

	store.withdraw(benSession.Hash)
	if err := b.Publish("A", hub.Message{Kind: hub.KindResync}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*sink{ben, benAgain} {
		if code := s.waitClose(t); code != hub.CloseRevoked {
			t.Fatalf("close code %d, want %d", code, hub.CloseRevoked)
		}
	}
	// Checks of one tenant run one after another: once a second one has
	// started, the first one has closed all it was going to.
	store.waitCall(t)
	if err := b.Publish("A", hub.Message{Kind: hub.KindResync}); err != nil {
		t.Fatal(err)
	}
	store.waitCall(t)
	ana.mu.Lock()
	if len(ana.closes) != 0 {
		t.Errorf("ana's valid session was closed: %v", ana.closes)
	}
	ana.mu.Unlock()
	store.mu.Lock()
	if first := store.asked[0]; len(first) != 2 {
		t.Errorf("first check asked about %d sessions, want 2 (ben's once, ana's): %v", len(first), first)
	}
	store.mu.Unlock()
	if got := h.Stats().Reverified; got != 2 {
		t.Errorf("Reverified = %d, want 2", got)
	}
}

// A check that fails keeps every socket: the store being unreachable is no
// reason to sign anybody out.
func TestFailedRecheckKeepsSockets(t *testing.T) {
	store := newSessionStore()
	store.fail = true
	b := hub.NewLocalBroker()
	h := newHub(t, hub.Options{Broker: b, Verify: store.verify})
	ben := newSink()
	subscribe(t, h, session("A", "ben", "k-ben"), ben, 0)
	store.withdraw(session("A", "ben", "k-ben").Hash)
	if err := b.Publish("A", hub.Message{Kind: hub.KindResync}); err != nil {
		t.Fatal(err)
	}
	store.waitCall(t)
	h.Publish(events("A", 1, 1))
	ben.waitEvents(t, 1)
	ben.mu.Lock()
	defer ben.mu.Unlock()
	if len(ben.closes) != 0 {
		t.Fatalf("socket closed (%v) after a failed check", ben.closes)
	}
}

// With VerifyEvery, a withdrawal whose message never arrived is found
// without any loss being reported.
func TestPeriodicRecheckClosesAWithdrawnSession(t *testing.T) {
	store := newSessionStore()
	h := newHub(t, hub.Options{Verify: store.verify, VerifyEvery: 10 * time.Millisecond})
	ben, ana := newSink(), newSink()
	subscribe(t, h, session("A", "ben", "k-ben"), ben, 0)
	subscribe(t, h, session("B", "ana", "k-ana"), ana, 0)
	store.withdraw(session("A", "ben", "k-ben").Hash)
	if code := ben.waitClose(t); code != hub.CloseRevoked {
		t.Fatalf("close code %d, want %d", code, hub.CloseRevoked)
	}
	h.Publish(events("B", 1, 1))
	ana.waitEvents(t, 1)
	ana.mu.Lock()
	defer ana.mu.Unlock()
	if len(ana.closes) != 0 {
		t.Fatalf("another tenant's socket was closed: %v", ana.closes)
	}
}
