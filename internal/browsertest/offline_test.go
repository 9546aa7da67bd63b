package browsertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestOffline stops the server: a reload still shows the inbox and an opened
// conversation from the cache, a reply written meanwhile waits in the outbox
// (also across a reload, and after the app was closed and opened again),
// and it is sent exactly once when the server is back: once on the server, once at the SMS gateway.
func TestOffline(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Offline Shop")
	gw := newGateway(t)
	srv.withSMS(&tn, gw)
	c1 := srv.smsCustomer(tn, "+4915100000021", "Is the store open on Sunday?")
	c2 := srv.smsCustomer(tn, "+4915100000022", "I need an invoice for order 5521.")

	ctx, closeApp := closableTab(t, e, false)
	signInUI(t, ctx, srv.base, tn.adminKey)
	swReady(t, ctx)
	do(t, ctx, chromedp.Click(chromedp.CSS(convRow(c1))))
	waitJS(t, ctx, `[...document.querySelectorAll("#msg-list li.msg.in")].some(li => li.textContent.includes("open on Sunday"))`, 5*time.Second)
	waitJS(t, ctx, `document.getElementById("conn").dataset.state === "connected"`, 5*time.Second)

	srv.stop()
	waitJS(t, ctx, `["reconnecting", "offline"].includes(document.getElementById("conn").dataset.state)`, 5*time.Second)

	// Reload with no server: the shell comes from the service worker, the
	// data from IndexedDB.
	do(t, ctx, chromedp.Reload())
	waitJS(t, ctx, fmt.Sprintf(`!!document.querySelector(%q) && !!document.querySelector(%q)`, convRow(c1), convRow(c2)), 10*time.Second)
	waitJS(t, ctx, `[...document.querySelectorAll("#msg-list li.msg.in")].some(li => li.textContent.includes("open on Sunday"))`, 5*time.Second)

	// Written offline: shown as pending, kept across a reload.
	const text = "Yes, from 10 am to 4 pm on Sundays."
	do(t, ctx, chromedp.SendKeys(chromedp.ID("text"), text), chromedp.KeyEvent("\r"))
	pending := fmt.Sprintf(`[...document.querySelectorAll("#msg-list li.msg.out.local")].some(li => li.dataset.status === "pending" && li.textContent.includes(%s))`, jsString(text))
	waitJS(t, ctx, pending, 3*time.Second)
	do(t, ctx, chromedp.Reload())
	waitJS(t, ctx, pending, 10*time.Second)

	// The app is closed and opened again, still with no server: the reply
	// is still waiting, and this new window sends it.
	closeApp()
	ctx = tab(t, e, false)
	do(t, ctx, chromedp.Navigate(srv.base+"/c/"+c1))
	waitJS(t, ctx, pending, 10*time.Second)

	srv.start()
	sent := fmt.Sprintf(`[...document.querySelectorAll("#msg-list li.msg.out:not(.local)")].some(li => ["sent", "delivered", "read"].includes(li.dataset.status) && li.textContent.includes(%s))`, jsString(text))
	waitJS(t, ctx, sent, 30*time.Second)
	waitJS(t, ctx, `document.querySelectorAll("#msg-list li.msg.local").length === 0`, 5*time.Second)

	// Exactly once on the server, and exactly once in the stored event log.
	n := 0
	for _, m := range srv.messages(tn.adminToken, c1) {
		if m.Direction == "out" && m.Text == text {
			n++
		}
	}
	if n != 1 {
		t.Errorf("offline reply stored %d times, want 1", n)
	}
	var evs struct {
		Events []struct {
			Type string
			Data message
		}
	}
	srv.call("GET", "/api/v1/events?since=0&limit=200", tn.adminToken, nil, &evs, 200)
	created := 0
	for _, ev := range evs.Events {
		if ev.Type == "message.created" && ev.Data.Text == text {
			created++
		}
	}
	if created != 1 {
		t.Errorf("message.created for the offline reply %d times, want 1", created)
	}
	gw.waitSent(text, 10*time.Second)
	if n := len(gw.sent(text)); n != 1 {
		t.Errorf("the SMS gateway got the offline reply %d times, want 1", n)
	}
	if got := eval[float64](t, ctx, fmt.Sprintf(`document.querySelectorAll("#msg-list li.msg.out").length`)); got != 1 {
		t.Errorf("the conversation shows %v replies, want 1", got)
	}
}
