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
// reply from the composer reaches the channel with its ticks advancing.
func TestInstallableSignInLiveReply(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Acme")
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

	// A customer writes in while the inbox is open.
	start := time.Now()
	conv := srv.customer(tn, "+4915100000001", "Lena Schmidt", "Hello, where is my parcel?")
	waitJS(t, ctx, fmt.Sprintf(`!!document.querySelector(%q)`, convRow(conv)), time.Second)
	t.Logf("customer message shown %v after the webhook", time.Since(start))
	row := eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).innerText`, convRow(conv)))
	if !strings.Contains(row, "Lena Schmidt") || !strings.Contains(row, "where is my parcel") {
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

	do(t, ctx, chromedp.SendKeys(chromedp.ID("text"), "Your parcel left our warehouse this morning."), chromedp.KeyEvent("\r"))
	waitJS(t, ctx, `[...document.querySelectorAll("#msg-list li.msg.out")].some(li => li.textContent.includes("left our warehouse"))`, 2*time.Second)
	seen := map[string]bool{}
	for _, st := range []string{"sent", "delivered", "read"} {
		waitJS(t, ctx, fmt.Sprintf(`[...document.querySelectorAll("#msg-list li.msg.out")].some(li => li.dataset.status === %q && li.querySelector(".tick-%s"))`, st, st), 10*time.Second)
		seen[st] = true
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
