package browsertest

import (
	"fmt"
	"testing"
	"time"
)

// TestFilters: the inbox's search, status and label filters, and the
// newest-first order, against a server-side change made meanwhile.
func TestFilters(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Filter Shop")
	var convs []string
	for i, p := range []struct{ from, name, text string }{
		{"+4915100000081", "Paula Braun", "Where is my refund?"},
		{"+4915100000082", "Tom Wagner", "Do you have size 46?"},
		{"+4915100000083", "Ida Keller", "Thanks, all good."},
	} {
		convs = append(convs, srv.customer(tn, p.from, p.name, fmt.Sprintf("%s (%d)", p.text, i)))
	}
	ctx := tab(t, e, false)
	signInUI(t, ctx, srv.base, tn.adminKey)
	rows := `[...document.querySelectorAll("#conv-list li")].map(li => li.dataset.id).join()`
	order := func(ids ...string) string {
		s := ""
		for i, id := range ids {
			if i > 0 {
				s += ","
			}
			s += id
		}
		return fmt.Sprintf(`%s === %q`, rows, s)
	}
	waitJS(t, ctx, order(convs[2], convs[1], convs[0]), 10*time.Second)
	waitJS(t, ctx, `document.getElementById("conn").dataset.state === "connected"`, 10*time.Second)

	// Changes made elsewhere arrive live and the filters follow them.
	srv.call("PATCH", "/api/v1/conversations/"+convs[0], tn.adminToken, map[string]any{"labels": []string{"refund"}}, nil, 200)
	srv.call("PATCH", "/api/v1/conversations/"+convs[2], tn.adminToken, map[string]any{"status": "resolved"}, nil, 200)
	waitJS(t, ctx, order(convs[1], convs[0]), 5*time.Second)

	eval[bool](t, ctx, `(() => { const q = document.getElementById("f-q"); q.value = "size 46"; q.dispatchEvent(new Event("input")); return true; })()`)
	waitJS(t, ctx, order(convs[1]), 5*time.Second)
	eval[bool](t, ctx, `(() => { const q = document.getElementById("f-q"); q.value = ""; q.dispatchEvent(new Event("input")); return true; })()`)
	waitJS(t, ctx, order(convs[1], convs[0]), 5*time.Second)

	waitJS(t, ctx, `[...document.getElementById("f-label").options].some(o => o.value === "refund")`, 5*time.Second)
	selectValue(t, ctx, "#f-label", "refund")
	waitJS(t, ctx, order(convs[0]), 5*time.Second)
	selectValue(t, ctx, "#f-label", "")
	selectValue(t, ctx, "#f-status", "resolved")
	waitJS(t, ctx, order(convs[2]), 5*time.Second)
	selectValue(t, ctx, "#f-status", "")
	waitJS(t, ctx, order(convs[2], convs[1], convs[0]), 5*time.Second)

	// New activity puts a conversation first.
	srv.customer(tn, "+4915100000081", "Paula Braun", "Hello?")
	waitJS(t, ctx, order(convs[0], convs[2], convs[1]), 5*time.Second)
}

// TestLiveReset: the app resumes with a seq the server cannot serve (as
// after the server's data was restored from an older backup); the server
// answers reset, and the app refetches its lists, picking up what it never
// got an event for, then follows live events from the new head.
func TestLiveReset(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Reset Co")
	first := srv.customer(tn, "+4915100000091", "Nora Lang", "Hi there")
	ctx := tab(t, e, false)
	signInUI(t, ctx, srv.base, tn.adminKey)
	waitJS(t, ctx, fmt.Sprintf(`!!document.querySelector(%q) && document.getElementById("conn").dataset.state === "connected"`, convRow(first)), 10*time.Second)

	// The app's socket goes away; meanwhile a customer writes in.
	eval[bool](t, ctx, `(onebox.state.live.stop(), true)`)
	missed := srv.customer(tn, "+4915100000092", "Emil Hahn", "Are you there?")
	eval[bool](t, ctx, `(onebox.state.lastSeq = 1e9, onebox.state.live.start(), true)`)
	waitJS(t, ctx, fmt.Sprintf(`!!document.querySelector(%q) && onebox.state.lastSeq > 0 && onebox.state.lastSeq < 1e9`, convRow(missed)), 10*time.Second)

	// Live again from the new head.
	later := srv.customer(tn, "+4915100000093", "Ria Sen", "Hello from later")
	waitJS(t, ctx, fmt.Sprintf(`!!document.querySelector(%q)`, convRow(later)), 5*time.Second)
}
