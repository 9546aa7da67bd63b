package browsertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestInstallableSignInLiveReply covers the main path: the app is
// installable, an agent signs in, a customer's message appears live, and a
// reply from the composer reaches the SMS gateway with its ticks advancing
// as the gateway's signed status callbacks arrive.
func TestInstallableSignInLiveReply(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Acme")
	gw := newGateway(t)
	srv.withSMS(&tn, gw)
	ctx := tab(t, e, false)

	signInUI(t, ctx, srv.base, tn.adminKey)
	swReady(t, ctx)

	inst, err := chromedp.Call(ctx, page.GetInstallabilityErrors, cdp.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ie := range inst.InstallabilityErrors {
		t.Errorf("installability error: %s %v", ie.ErrorID, ie.ErrorArguments)
	}

	// A customer texts in while the inbox is open.
	waitJS(t, ctx, `document.getElementById("conn").dataset.state === "connected"`, 10*time.Second)
	start := time.Now()
	conv := srv.smsCustomer(tn, "+4915100000001", "Hello, where is my parcel?")
	waitJS(t, ctx, fmt.Sprintf(`!!document.querySelector(%q)`, convRow(conv)), time.Second)
	t.Logf("customer message shown %v after the signed webhook", time.Since(start))
	row := eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).innerText`, convRow(conv)))
	if !strings.Contains(row, "+4915100000001") || !strings.Contains(row, "where is my parcel") {
		t.Errorf("row = %q", row)
	}
	if n := eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q + " .badge").textContent`, convRow(conv))); n != "1" {
		t.Errorf("unread badge = %q, want 1", n)
	}

	// Keyboard: j selects the row, Enter opens it, r focuses the composer.
	do(t, ctx, chromedp.KeyEvent("j"))
	waitJS(t, ctx, fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, convRow(conv)), 2*time.Second)
	do(t, ctx, chromedp.KeyEvent("\r"))
	waitJS(t, ctx, fmt.Sprintf(`location.pathname === "/c/%s" && document.querySelectorAll("#msg-list li.msg.in").length === 1`, conv), 3*time.Second)
	do(t, ctx, chromedp.KeyEvent("r"))
	waitJS(t, ctx, `document.activeElement.id === "text"`, 2*time.Second)
	// CDP types a key as keyDown plus a separate char event, and the app's
	// preventDefault on keydown cannot cancel the latter as it would in a
	// real keyboard's event sequence; drop the stray "r".
	eval[bool](t, ctx, `(document.getElementById("text").value = "", true)`)

	// Reading it clears the unread count on the server.
	waitJS(t, ctx, fmt.Sprintf(`!document.querySelector(%q + " .badge")`, convRow(conv)), 3*time.Second)

	const reply = "Your parcel left our warehouse this morning."
	do(t, ctx, chromedp.SendKeys(chromedp.ID("text"), reply), chromedp.KeyEvent("\r"))
	waitJS(t, ctx, `[...document.querySelectorAll("#msg-list li.msg.out")].some(li => li.textContent.includes("left our warehouse"))`, 2*time.Second)
	sms := gw.waitSent(reply, 10*time.Second)
	if sms.To != "+4915100000001" || sms.From != smsNumber {
		t.Errorf("gateway got from %q to %q", sms.From, sms.To)
	}
	tick := func(st string) string {
		return fmt.Sprintf(`[...document.querySelectorAll("#msg-list li.msg.out")].some(li => li.dataset.status === %q && li.querySelector(".tick-%s"))`, st, st)
	}
	// Accepted by the gateway: sent. Then the handset's reports.
	waitJS(t, ctx, tick("sent"), 10*time.Second)
	for _, st := range []string{"delivered", "read"} {
		if eval[bool](t, ctx, tick(st)) {
			t.Fatalf("tick %s shown before the gateway reported it", st)
		}
		srv.smsStatus(tn, sms.GatewayID, st)
		waitJS(t, ctx, tick(st), 5*time.Second)
	}
	if n := len(gw.sent(reply)); n != 1 {
		t.Errorf("gateway got the reply %d times, want 1", n)
	}
	var outs int
	msgs := srv.messages(tn.adminToken, conv)
	for _, m := range msgs {
		if m.Direction == "out" && m.Text == "Your parcel left our warehouse this morning." {
			outs++
			if m.Status != "read" {
				t.Errorf("server status = %s, want read", m.Status)
			}
		}
	}
	if outs != 1 {
		t.Errorf("reply stored %d times, want 1: %+v", outs, msgs)
	}

	// Esc leaves the conversation and puts focus back on its row.
	do(t, ctx, chromedp.KeyEvent("\x1b"), chromedp.KeyEvent("\x1b"))
	waitJS(t, ctx, fmt.Sprintf(`location.pathname === "/" && document.activeElement === document.querySelector(%q)`, convRow(conv)), 2*time.Second)
}
