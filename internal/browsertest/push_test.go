package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// TestPushNotification delivers push messages to the app's service worker
// (as a push service would), checks the notifications it shows, and clicks
// one: the app opens that conversation. The second message has no text (the
// private mode), so the worker fetches it over the API first.
func TestPushNotification(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Push Co")
	conv := srv.customer(tn, "+4915100000041", "Ella Novak", "Can I pay on delivery?")
	other := srv.customer(tn, "+4915100000042", "Ben Ito", "Where do I find my receipt?")

	ctx := tab(t, e, false)
	signInUI(t, ctx, srv.base, tn.adminKey)
	swReady(t, ctx)
	if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: browser.PermissionSettingGranted, Origin: srv.base,
	}); err != nil {
		t.Fatal(err)
	}

	reg, err := chromedp.Run(ctx, chromedp.WaitEvent(serviceworker.WorkerRegistrationUpdated,
		func(ev serviceworker.EventWorkerRegistrationUpdated) bool {
			for _, r := range ev.Registrations {
				if r.ScopeURL == srv.base+"/" && !r.IsDeleted {
					return true
				}
			}
			return false
		},
		chromedp.Func(func(c context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(c, serviceworker.Enable, cdp.Empty{})
			return err
		})))
	if err != nil {
		t.Fatal(err)
	}
	var regID serviceworker.RegistrationID
	for _, r := range reg.Registrations {
		if r.ScopeURL == srv.base+"/" {
			regID = r.RegistrationID
		}
	}
	deliver := func(payload map[string]any) {
		t.Helper()
		b, _ := json.Marshal(payload)
		if _, err := chromedp.Call(ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{Origin: srv.base, RegistrationID: regID, Data: string(b)}); err != nil {
			t.Fatal(err)
		}
	}
	notifications := `navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.map(n => n.tag + "|" + n.title + "|" + n.body).sort().join("\n"))`

	// A worker that is still starting can miss a push delivered through
	// the protocol on a loaded machine; a push service would retry, and so
	// does the test (the tag makes a repeat harmless).
	pushUntil := func(payload map[string]any, shown string) {
		t.Helper()
		for i := 0; ; i++ {
			deliver(payload)
			if pollJS(ctx, shown, 3*time.Second) {
				return
			}
			if i == 2 {
				t.Fatalf("no such notification after three pushes; shown: %q", eval[string](t, ctx, notifications))
			}
		}
	}
	pushUntil(map[string]any{"tenant_id": tn.id, "conversation_id": conv, "seq": 3, "title": "Ella Novak", "body": "Can I pay on delivery?"},
		notifications+fmt.Sprintf(`.then(s => s.includes(%s))`, jsString("conversation-"+conv+"|Ella Novak|Can I pay on delivery?")))
	// A repeat for the same conversation replaces the notification.
	pushUntil(map[string]any{"tenant_id": tn.id, "conversation_id": conv, "seq": 4, "title": "Ella Novak", "body": "Hello?"},
		notifications+fmt.Sprintf(`.then(s => s === %s)`, jsString("conversation-"+conv+"|Ella Novak|Hello?")))
	// Private mode: no text in the payload, so the worker fetches the
	// conversation over the API before it shows anything.
	pushUntil(map[string]any{"tenant_id": tn.id, "conversation_id": other, "seq": 5},
		notifications+fmt.Sprintf(`.then(s => s.includes(%s))`, jsString("conversation-"+other+"|Ben Ito|Where do I find my receipt?")))

	// The worker stored the events.
	stored := eval[float64](t, ctx, fmt.Sprintf(`(async () => { const { TenantDB } = await import("/js/db.js"); const db = await TenantDB.open(%q); const n = (await db.pushEvents()).length; db.close(); return n; })()`, tn.id))
	if stored < 3 {
		t.Errorf("stored push events = %v, want at least 3", stored)
	}

	// Click: dispatched in the worker, as the notification system would.
	targets, err := chromedp.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var swID target.ID
	for _, ti := range targets {
		if ti.Type == "service_worker" && strings.HasPrefix(ti.URL, srv.base) {
			swID = ti.TargetID
		}
	}
	if swID == "" {
		t.Fatal("no service worker target")
	}
	sw, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(swID))
	defer cancel()
	click := fmt.Sprintf(`self.registration.getNotifications().then(ns => {
		const n = ns.find(n => n.tag === %q);
		self.dispatchEvent(new NotificationEvent("notificationclick", { notification: n }));
		return true;
	})`, "conversation-"+conv)
	if _, err := chromedp.Run(sw, chromedp.Evaluate[bool](click, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, fmt.Sprintf(`location.pathname === "/c/%s" && document.getElementById("t-name").textContent === "Ella Novak"`, conv), 5*time.Second)
	waitJS(t, ctx, notifications+fmt.Sprintf(`.then(s => !s.includes(%q))`, "conversation-"+conv), 5*time.Second)
}
