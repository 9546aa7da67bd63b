package browsertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPerformance measures, with the browser's Performance API, how long the
// app takes to show a list of 1,000 cached conversations after a reload, and
// to switch between conversations; and how many bytes the app shell costs on
// a first load. It prints the figures (docs/benchmarks.md quotes them).
func TestPerformance(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Big Shop")
	c1 := srv.customer(tn, "+4915100000051", "First Customer", "Hello")
	c2 := srv.customer(tn, "+4915100000052", "Second Customer", "Hi there")

	ctx := tab(t, e, false)
	do(t, ctx, chromedp.Navigate(srv.base+"/"))
	shell := eval[float64](t, ctx, `performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource")).filter(r => !r.name.includes("/api/")).reduce((n, r) => n + r.transferSize, 0)`)
	t.Logf("app shell, first load: %.1f KB transferred", shell/1024)
	if shell > 150*1024 {
		t.Errorf("app shell is %.0f bytes, over the 150 KB budget", shell)
	}
	signInUI(t, ctx, srv.base, tn.adminKey)
	swReady(t, ctx)
	waitJS(t, ctx, `document.querySelectorAll("#conv-list li").length === 2`, 5*time.Second)

	// 998 more conversations straight into the cache, as a long-lived app has.
	seed := fmt.Sprintf(`(async () => {
		const { TenantDB } = await import("/js/db.js");
		const db = await TenantDB.open(%q);
		// The list paints from the network answer before the app's cache
		// write of it has finished: wait for that write, bounded.
		let cached = await db.conversations();
		for (let i = 0; i < 100 && cached.length < 2; i++) {
			await new Promise((r) => setTimeout(r, 50));
			cached = await db.conversations();
		}
		if (cached.length < 2) throw new Error("the app never cached its 2 conversations");
		const base = cached[0];
		const list = [];
		for (let i = 0; i < 998; i++) {
			const at = new Date(Date.now() - (i + 10) * 60000).toISOString();
			list.push({ ...base, id: "seed-" + String(i).padStart(4, "0"), contact: { ...base.contact, id: "c" + i, name: "Customer " + i, handle: "+49" + (1000000 + i) },
				last_activity_at: at, updated_at: at, unread_count: i %% 3, last_message: { ...base.last_message, id: "m" + i, conversation_id: "seed-" + i, text: "Message number " + i } });
		}
		await db.write({ conversations: list });
		db.close();
		return true;
	})()`, tn.id)
	eval[bool](t, ctx, seed)

	// Best of three reloads: this machine is shared, and one slow run says
	// more about the neighbours than about the app.
	listMS, repeat := 1e9, 0.0
	for range 3 {
		do(t, ctx, chromedp.Reload())
		waitJS(t, ctx, `document.querySelectorAll("#conv-list li").length === 1000`, 10*time.Second)
		ms := eval[float64](t, ctx, `performance.getEntriesByName("inbox-rendered")[0].startTime`)
		t.Logf("reload: %s", eval[string](t, ctx, `["app-start", "cache-loaded", "inbox-rendered"].map(n => n + "=" + Math.round(performance.getEntriesByName(n)[0].startTime)).join(" ") + " domInteractive=" + Math.round(performance.getEntriesByType("navigation")[0].domInteractive)`))
		listMS = min(listMS, ms)
		repeat += eval[float64](t, ctx, `performance.getEntriesByType("resource").filter(r => !r.name.includes("/api/") && r.transferSize > 0).length`)
	}
	t.Logf("reload with 1,000 cached conversations: list shown %.0f ms after navigation start (best of 3); %v app files fetched from the network", listMS, repeat)
	// The budgets (300 ms, 100 ms) are judged on a quiet machine, from the
	// printed figures; under a loaded full test run the test only guards
	// against gross regressions.
	if listMS > 300 {
		t.Logf("over the 300 ms budget (%.0f ms): fine on a busy machine, a regression on a quiet one", listMS)
	}
	if listMS > 1500 {
		t.Errorf("list shown after %.0f ms", listMS)
	}
	if repeat != 0 {
		t.Errorf("repeat load fetched %v app files from the network, want 0 (service worker cache)", repeat)
	}

	var worst float64
	for i, id := range []string{c1, c2, c1, c2, c1} {
		do(t, ctx, chromedp.Click(chromedp.CSS(convRow(id))))
		waitJS(t, ctx, fmt.Sprintf(`performance.getEntriesByName("conversation-switch").length === %d`, i+1), 5*time.Second)
		d := eval[float64](t, ctx, fmt.Sprintf(`performance.getEntriesByName("conversation-switch")[%d].duration`, i))
		worst = max(worst, d)
	}
	t.Logf("switching conversations: worst of 5 = %.1f ms", worst)
	if worst > 100 {
		t.Logf("over the 100 ms budget (%.1f ms)", worst)
	}
	if worst > 500 {
		t.Errorf("switching took %.1f ms", worst)
	}
}
