package browsertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

type convState struct {
	AssigneeID   *string  `json:"assignee_id"`
	Labels       []string `json:"labels"`
	Status       string   `json:"status"`
	SnoozedUntil *string  `json:"snoozed_until"`
}

func (s *server) conversation(token, id string) convState {
	s.t.Helper()
	var r struct{ Conversation convState }
	s.call("GET", "/api/v1/conversations/"+id, token, nil, &r, 200)
	return r.Conversation
}

// selectValue picks an option of a <select> as a person would, so its
// change handler runs.
func selectValue(t *testing.T, ctx context.Context, sel, value string) {
	t.Helper()
	eval[bool](t, ctx, fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %s; s.dispatchEvent(new Event("change", { bubbles: true })); return s.value === %s; })()`, sel, jsString(value), jsString(value)))
}

func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	do(t, ctx, chromedp.Click(chromedp.CSS(sel)))
}

// TestConversationActions: two agents on their own devices. Each sees the
// other online; the admin assigns the conversation to themself and then to
// the agent, labels, snoozes, resolves and reopens it; the agent sees the
// admin typing; a reply the SMS gateway refuses shows the reason, and its
// Retry button sends it.
func TestConversationActions(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Actions Ltd")
	gw := newGateway(t)
	srv.withSMS(&tn, gw)
	var ag struct {
		Agent     struct{ ID string }
		AccessKey string `json:"access_key"`
	}
	srv.call("POST", "/api/v1/agents", tn.adminToken, map[string]string{"name": "Sofia Rossi", "email": "sofia@example.com", "role": "agent"}, &ag, 201)
	var list struct{ Agents []struct{ ID, Name string } }
	srv.call("GET", "/api/v1/agents", tn.adminToken, nil, &list, 200)
	var me struct{ Agent struct{ Name string } }
	for _, a := range list.Agents {
		if a.ID == tn.adminID {
			me.Agent.Name = a.Name
		}
	}
	const handle = "+4915100000051"
	conv := srv.smsCustomer(tn, handle, "My order arrived damaged.")

	admin := tab(t, e, false)
	signInUI(t, admin, srv.base, tn.adminKey)
	connected := `document.getElementById("conn").dataset.state === "connected"`
	waitJS(t, admin, connected, 10*time.Second)
	if eval[bool](t, admin, `document.getElementById("presence").getAttribute("aria-label").includes("Sofia Rossi")`) {
		t.Error("Sofia shown online before she signed in")
	}

	// Presence: Sofia signs in on her own device; the admin sees her.
	agent := tab(t, e, true)
	signInUI(t, agent, srv.base, ag.AccessKey)
	waitJS(t, agent, connected, 10*time.Second)
	waitJS(t, admin, `document.getElementById("presence").getAttribute("aria-label").includes("Sofia Rossi")`, 5*time.Second)
	waitJS(t, agent, fmt.Sprintf(`document.getElementById("presence").getAttribute("aria-label").includes(%s)`, jsString(me.Agent.Name)), 5*time.Second)

	openRow(t, admin, conv)
	waitJS(t, admin, fmt.Sprintf(`document.getElementById("t-name").textContent === %q && !!document.querySelector("#t-assign option")`, handle), 5*time.Second)

	// Assign to me, then to Sofia: her Mine filter shows it live.
	selectValue(t, admin, "#t-assign", tn.adminID)
	waitJS(t, admin, fmt.Sprintf(`!!document.querySelector(%q + " .assignee")?.textContent.includes("You")`, convRow(conv)), 5*time.Second)
	if c := srv.conversation(tn.adminToken, conv); c.AssigneeID == nil || *c.AssigneeID != tn.adminID {
		t.Errorf("assignee after 'to me' = %v", c.AssigneeID)
	}
	click(t, agent, `[data-assignee=me]`)
	waitJS(t, agent, `document.getElementById("list-empty").hidden === false || document.querySelectorAll("#conv-list li").length === 0`, 5*time.Second)
	selectValue(t, admin, "#t-assign", ag.Agent.ID)
	waitJS(t, agent, fmt.Sprintf(`!!document.querySelector(%q)`, convRow(conv)), 5*time.Second)
	waitJS(t, admin, fmt.Sprintf(`!!document.querySelector(%q + " .assignee")?.textContent.includes("Sofia")`, convRow(conv)), 5*time.Second)
	if c := srv.conversation(tn.adminToken, conv); c.AssigneeID == nil || *c.AssigneeID != ag.Agent.ID {
		t.Errorf("assignee after 'to Sofia' = %v", c.AssigneeID)
	}

	// Labels, through the dialog.
	click(t, admin, "#t-labels")
	waitJS(t, admin, `document.getElementById("dialog").open && !!document.getElementById("labels-input")`, 3*time.Second)
	eval[bool](t, admin, `(document.getElementById("labels-input").value = "damaged, refund", true)`)
	click(t, admin, `#dialog button[value=save]`)
	waitJS(t, admin, `[...document.querySelectorAll("#t-labels-view .chip")].map(c => c.textContent).join() === "damaged,refund"`, 5*time.Second)
	waitJS(t, admin, `[...document.getElementById("f-label").options].some(o => o.value === "refund")`, 5*time.Second)
	if c := srv.conversation(tn.adminToken, conv); strings.Join(c.Labels, ",") != "damaged,refund" {
		t.Errorf("labels = %v", c.Labels)
	}
	waitJS(t, agent, fmt.Sprintf(`[...document.querySelectorAll(%q + " .chip")].some(c => c.textContent === "refund")`, convRow(conv)), 5*time.Second)

	// Snooze for an hour.
	click(t, admin, "#t-snooze")
	waitJS(t, admin, `!document.getElementById("snooze-menu").hidden`, 3*time.Second)
	click(t, admin, `#snooze-menu [data-snooze="1h"]`)
	waitJS(t, admin, `document.getElementById("t-sub").textContent.includes("snoozed until")`, 5*time.Second)
	c := srv.conversation(tn.adminToken, conv)
	if c.Status != "snoozed" || c.SnoozedUntil == nil {
		t.Errorf("after snooze: %+v", c)
	} else if until, err := time.Parse(time.RFC3339, *c.SnoozedUntil); err != nil || until.Before(time.Now().Add(50*time.Minute)) || until.After(time.Now().Add(70*time.Minute)) {
		t.Errorf("snoozed until %s (%v), want in an hour", *c.SnoozedUntil, err)
	}

	// Resolve, then reopen.
	click(t, admin, "#t-resolve")
	waitJS(t, admin, `document.getElementById("t-resolve").textContent === "Reopen"`, 5*time.Second)
	if c := srv.conversation(tn.adminToken, conv); c.Status != "resolved" {
		t.Errorf("status after Resolve = %s", c.Status)
	}
	click(t, admin, "#t-resolve")
	waitJS(t, admin, `document.getElementById("t-resolve").textContent === "Resolve"`, 5*time.Second)
	if c := srv.conversation(tn.adminToken, conv); c.Status != "open" {
		t.Errorf("status after Reopen = %s", c.Status)
	}

	// Typing: Sofia has the conversation open and sees the admin type.
	openRow(t, agent, conv)
	waitJS(t, agent, fmt.Sprintf(`location.pathname === "/c/%s"`, conv), 5*time.Second)
	waitJS(t, agent, `document.getElementById("typing").textContent === ""`, 3*time.Second)
	const reply = "Sorry about that. A replacement is on its way."
	gw.failOnce(reply, "Number unreachable")
	do(t, admin, chromedp.SendKeys(chromedp.ID("text"), reply))
	waitJS(t, agent, fmt.Sprintf(`document.getElementById("typing").textContent === %s`, jsString(me.Agent.Name+" is typing…")), 5*time.Second)

	// The gateway refuses the reply: the reason shows, Retry sends it.
	do(t, admin, chromedp.KeyEvent("\r"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replies in the page: %s", eval[string](t, admin, `[...document.querySelectorAll("#msg-list li.msg.out")].map(li => li.dataset.status + ": " + li.innerHTML).join("\n")`))
			var r struct{ Messages []map[string]any }
			srv.call("GET", "/api/v1/conversations/"+conv+"/messages", tn.adminToken, nil, &r, 200)
			t.Logf("messages on the server: %v", r.Messages)
		}
	})
	failed := fmt.Sprintf(`[...document.querySelectorAll("#msg-list li.msg.out")].find(li => li.dataset.status === "failed" && li.textContent.includes(%s))`, jsString(reply))
	waitJS(t, admin, failed+`?.querySelector(".fail")?.textContent.includes("Number unreachable") === true`, 10*time.Second)
	waitJS(t, agent, fmt.Sprintf(`[...document.querySelectorAll("#msg-list li.msg.out")].some(li => li.dataset.status === "failed" && li.textContent.includes(%s))`, jsString(reply)), 5*time.Second)
	if n := len(gw.sent(reply)); n != 0 {
		t.Fatalf("gateway accepted the refused reply %d times", n)
	}
	eval[bool](t, admin, failed+`.querySelector("[data-retry]").click() || true`)
	sms := gw.waitSent(reply, 10*time.Second)
	if sms.To != handle {
		t.Errorf("retried reply went to %q", sms.To)
	}
	waitJS(t, admin, fmt.Sprintf(`[...document.querySelectorAll("#msg-list li.msg.out")].some(li => li.dataset.status === "sent" && li.textContent.includes(%s) && !li.querySelector(".fail"))`, jsString(reply)), 10*time.Second)
	if n := len(gw.sent(reply)); n != 1 {
		t.Errorf("gateway got the retried reply %d times, want 1", n)
	}
	if got := eval[float64](t, admin, `document.querySelectorAll("#msg-list li.msg.out").length`); got != 1 {
		t.Errorf("the conversation shows %v replies, want 1", got)
	}

	// Shift+Enter starts a new line; Enter sends both lines as one text.
	// (CDP's Enter also types a char event that a real keyboard's
	// cancelled keydown would not: clear what the last send left.)
	eval[bool](t, admin, `(document.getElementById("text").value = "", true)`)
	do(t, admin,
		chromedp.SendKeys(chromedp.ID("text"), "Tracking: RX123."),
		chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierShift)),
		chromedp.SendKeys(chromedp.ID("text"), "Arrives Friday."),
	)
	if v := eval[string](t, admin, `document.getElementById("text").value`); v != "Tracking: RX123.\nArrives Friday." {
		t.Fatalf("composer holds %q after Shift+Enter", v)
	}
	do(t, admin, chromedp.KeyEvent("\r"))
	gw.waitSent("Tracking: RX123.\nArrives Friday.", 10*time.Second)

	// A private note stays in OneBox: shown as a note to both agents, never
	// sent to the gateway.
	const note = "Customer called twice; offer a voucher if it happens again."
	do(t, admin, chromedp.Click(chromedp.ID("private")), chromedp.SendKeys(chromedp.ID("text"), note), chromedp.KeyEvent("\r"))
	isNote := fmt.Sprintf(`[...document.querySelectorAll("#msg-list li.msg.note:not(.local)")].some(li => li.textContent.includes(%s) && li.textContent.includes("Private note"))`, jsString(note))
	waitJS(t, admin, isNote, 5*time.Second)
	waitJS(t, agent, isNote, 5*time.Second)
	var stored bool
	for _, m := range srv.messages(tn.adminToken, conv) {
		if m.Text == note {
			stored = m.Kind == "note" || m.Direction != "out"
		}
	}
	if !stored {
		t.Error("the note is not stored as a note")
	}
	if n := len(gw.sent(note)); n != 0 {
		t.Errorf("the private note went to the gateway %d times", n)
	}
}
