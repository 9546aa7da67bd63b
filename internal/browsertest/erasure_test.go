package browsertest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestContactErasure erases a contact while one agent has the conversation
// open and another agent's app is closed with it cached. The open app goes
// back to the inbox with a notice and drops the conversation at once; the
// closed app drops it when it catches up on the event log (the erased
// events come back as tombstones, which it skips). The erased text is then
// in neither page nor either IndexedDB.
func TestContactErasure(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Erasure GmbH")
	keyA := srv.newAgent(tn, "Amara Okafor", "amara@example.com")
	keyB := srv.newAgent(tn, "Bruno Costa", "bruno@example.com")

	const marker = "ERASE-ME-7c41d9"
	conv := srv.customer(tn, "+4915100000071", "Lena Vogel", "My address is Hauptstr. 5, "+marker)
	if c2 := srv.customer(tn, "+4915100000071", "Lena Vogel", "And my card ends in 4242 "+marker); c2 != conv {
		t.Fatalf("second message landed in %s, want %s", c2, conv)
	}
	keep := srv.customer(tn, "+4915100000072", "Omar Haddad", "Do you ship to Austria?")

	msgShown := func(n int) string {
		return fmt.Sprintf(`[...document.querySelectorAll("#msg-list li.msg.in")].filter(li => li.textContent.includes(%s)).length === %d`, jsString(marker), n)
	}
	connected := `document.getElementById("conn").dataset.state === "connected"`

	// B reads the conversation, so its messages are cached, and closes the
	// app. B's tab is in the browser's default context, whose storage
	// outlives the tab.
	ctxB, closeB := closableTab(t, e, false)
	signInUI(t, ctxB, srv.base, keyB)
	waitJS(t, ctxB, connected, 10*time.Second)
	openRow(t, ctxB, conv)
	waitJS(t, ctxB, msgShown(2), 5*time.Second)
	waitIDB(t, ctxB, "B's cache holds the conversation", func(dump string) bool {
		return strings.Count(dump, marker) >= 2 && strings.Contains(dump, keep)
	})
	closeB()

	// The customer writes again while B's app is closed: B's replay will
	// meet these events as tombstones.
	if c3 := srv.customer(tn, "+4915100000071", "Lena Vogel", "Please call me at +49 151 0000071 "+marker); c3 != conv {
		t.Fatalf("third message landed in %s, want %s", c3, conv)
	}

	// A has it open.
	ctxA := tab(t, e, true)
	signInUI(t, ctxA, srv.base, keyA)
	waitJS(t, ctxA, connected, 10*time.Second)
	openRow(t, ctxA, conv)
	waitJS(t, ctxA, fmt.Sprintf(`location.pathname === "/c/%s" && (%s)`, conv, msgShown(3)), 5*time.Second)
	waitIDB(t, ctxA, "A's cache holds the conversation", func(dump string) bool {
		return strings.Count(dump, marker) >= 3
	})

	// The admin erases the contact.
	var c struct {
		Conversation struct {
			Contact struct{ ID string }
		}
	}
	srv.call("GET", "/api/v1/conversations/"+conv, tn.adminToken, nil, &c, 200)
	srv.call("DELETE", "/api/v1/contacts/"+c.Conversation.Contact.ID, tn.adminToken, nil, nil, 202)

	// A is back in the inbox with a notice, the row is gone, and so is the
	// cached copy; the other conversation stays.
	waitJS(t, ctxA, fmt.Sprintf(`location.pathname === "/" && !document.querySelector(%q) && document.getElementById("toast").classList.contains("show") && document.getElementById("toast").textContent.includes("deleted at the customer's request")`, convRow(conv)), 15*time.Second)
	if !eval[bool](t, ctxA, fmt.Sprintf(`!!document.querySelector(%q)`, convRow(keep))) {
		t.Error("A's list lost the other conversation")
	}
	waitIDB(t, ctxA, "A's cache drops the conversation", func(dump string) bool {
		return !strings.Contains(dump, conv) && !strings.Contains(dump, marker) && strings.Contains(dump, keep)
	})

	// The server's log now has the erased events as tombstones and one
	// contact.erased; B will replay them.
	var log struct {
		Events []struct{ Type string }
		Head   float64
	}
	srv.call("GET", "/api/v1/events?since=0&limit=500", tn.adminToken, nil, &log, 200)
	erased, tombstones := 0, 0
	for _, ev := range log.Events {
		switch ev.Type {
		case "contact.erased":
			erased++
		case "tombstone":
			tombstones++
		}
	}
	if erased != 1 || tombstones == 0 {
		t.Fatalf("event log has %d contact.erased and %d tombstones; want 1 and some", erased, tombstones)
	}

	// B opens the app again and catches up by replay.
	ctxB = tab(t, e, false)
	var mu sync.Mutex
	var frames []string
	if err := chromedp.Listen(ctxB, func(ev any) {
		if f, ok := ev.(*network.EventWebSocketFrameReceived); ok {
			mu.Lock()
			frames = append(frames, string(f.Response.PayloadData))
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctxB, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	do(t, ctxB, chromedp.Navigate(srv.base+"/"))
	waitJS(t, ctxB, `!document.getElementById("main").hidden`, 10*time.Second)
	waitJS(t, ctxB, fmt.Sprintf(`(%s) && !document.querySelector(%q) && !!document.querySelector(%q) && window.onebox.state.lastSeq >= %d`, connected, convRow(conv), convRow(keep), int64(log.Head)), 10*time.Second)
	waitIDB(t, ctxB, "B's cache drops the conversation", func(dump string) bool {
		return !strings.Contains(dump, conv) && !strings.Contains(dump, marker) && strings.Contains(dump, keep)
	})
	mu.Lock()
	replayed := strings.Join(frames, "\n")
	mu.Unlock()
	if !strings.Contains(replayed, `"contact.erased"`) || !strings.Contains(replayed, `"tombstone"`) || strings.Contains(replayed, `"type":"reset"`) {
		t.Errorf("B did not catch up by replay; frames:\n%s", replayed)
	}

	// The erased text is nowhere in either app.
	for name, ctx := range map[string]context.Context{"A": ctxA, "B": ctxB} {
		if eval[bool](t, ctx, fmt.Sprintf(`document.documentElement.outerHTML.includes(%s)`, jsString(marker))) {
			t.Errorf("%s's page still shows erased text", name)
		}
		if dump := idbDump(t, ctx); strings.Contains(dump, marker) || strings.Contains(dump, conv) {
			t.Errorf("%s's IndexedDB still holds the erased conversation", name)
		}
	}
}

// newAgent adds an agent to the tenant and returns its access key.
func (s *server) newAgent(tn tenant, name, email string) string {
	s.t.Helper()
	var ag struct {
		AccessKey string `json:"access_key"`
	}
	s.call("POST", "/api/v1/agents", tn.adminToken, map[string]string{"name": name, "email": email, "role": "agent"}, &ag, 201)
	return ag.AccessKey
}

// idbJS reads every IndexedDB database of the page's origin into one text.
const idbJS = `(async () => {
  const out = [];
  const get = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
  for (const info of await indexedDB.databases()) {
    const db = await get(indexedDB.open(info.name));
    for (const name of db.objectStoreNames) out.push(name + ": " + JSON.stringify(await get(db.transaction(name).objectStore(name).getAll())));
    db.close();
  }
  return out.join("\n");
})()`

func idbDump(t *testing.T, ctx context.Context) string {
	t.Helper()
	return eval[string](t, ctx, idbJS)
}

// waitIDB polls the page's IndexedDB until ok holds for its contents.
func waitIDB(t *testing.T, ctx context.Context, what string, ok func(dump string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		dump := idbDump(t, ctx)
		if ok(dump) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s; IndexedDB:\n%s", what, dump)
		}
		<-tick.C
	}
}
