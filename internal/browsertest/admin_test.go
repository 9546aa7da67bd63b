package browsertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestAdminKeyAndRevocation: an admin adds an agent in the admin screen and
// reads the key shown once; the agent signs in with it on another device;
// when the admin revokes the key, the agent's app returns to sign-in and
// drops the tenant's cached data. A second key works until the admin
// deactivates the agent.
func TestAdminKeyAndRevocation(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Keys Inc")
	srv.customer(tn, "+4915100000031", "Noah Becker", "Hello?")

	admin := tab(t, e, false)
	signInUI(t, admin, srv.base, tn.adminKey)
	do(t, admin, chromedp.Click(chromedp.ID("nav-admin")))
	waitJS(t, admin, `!!document.querySelector("#agent-form")`, 5*time.Second)
	do(t, admin,
		chromedp.SendKeys(chromedp.CSS(`#agent-form input[name=name]`), "Amara Okafor"),
		chromedp.SendKeys(chromedp.CSS(`#agent-form input[name=email]`), "amara@example.com"),
		chromedp.Click(chromedp.CSS(`#agent-form button[type=submit]`)),
	)
	waitJS(t, admin, `document.getElementById("dialog").open && !!document.querySelector("#secret")`, 5*time.Second)
	key := eval[string](t, admin, `document.querySelector("#secret").value`)
	if !strings.HasPrefix(key, "obx_") {
		t.Fatalf("key shown = %q", key)
	}
	if eval[bool](t, admin, `!document.querySelector("#copy-secret")`) {
		t.Error("no copy button next to the key")
	}
	do(t, admin, chromedp.KeyEvent("\x1b"))
	waitJS(t, admin, `!document.getElementById("dialog").open && document.querySelector("#secret") === null`, 3*time.Second)
	if eval[bool](t, admin, fmt.Sprintf(`document.body.innerHTML.includes(%s)`, jsString(key))) {
		t.Error("the raw key is still in the page after the dialog closed")
	}

	agent := tab(t, e, true)
	signInUI(t, agent, srv.base, key)
	waitJS(t, agent, `document.querySelectorAll("#conv-list li").length === 1 && document.getElementById("conn").dataset.state === "connected"`, 5*time.Second)
	if !eval[bool](t, agent, `document.getElementById("nav-admin").hidden`) {
		t.Error("an agent sees the admin link")
	}
	tenantDB := "onebox-t-" + tn.id
	waitJS(t, agent, fmt.Sprintf(`indexedDB.databases().then(l => l.some(d => d.name === %q))`, tenantDB), 3*time.Second)

	// The admin sees the agent online and revokes the key.
	do(t, admin, chromedp.Reload())
	waitJS(t, admin, `!!document.querySelector("[data-act=revoke]")`, 5*time.Second)
	revoke := `[...document.querySelectorAll(".admin-item")].find(li => li.textContent.includes("Amara Okafor")).querySelector("[data-act=revoke]")`
	eval[bool](t, admin, revoke+`.click() || true`)
	waitJS(t, admin, `document.getElementById("dialog").open`, 3*time.Second)
	do(t, admin, chromedp.Click(chromedp.CSS(`#dialog button[value=ok]`)))

	start := time.Now()
	waitJS(t, agent, `!document.getElementById("signin").hidden && document.getElementById("main").hidden`, 3*time.Second)
	t.Logf("revoked app back at sign-in after %v", time.Since(start))
	if notice := eval[string](t, agent, `document.getElementById("signin-notice").textContent`); !strings.Contains(notice, "session has ended") {
		t.Errorf("sign-in notice = %q", notice)
	}
	waitJS(t, agent, fmt.Sprintf(`indexedDB.databases().then(l => !l.some(d => d.name === %q))`, tenantDB), 3*time.Second)
	if eval[bool](t, agent, `(async () => { const { loadSession } = await import("/js/db.js"); return !!(await loadSession()); })()`) {
		t.Error("the revoked session is still stored")
	}

	// The admin issues Amara another key; she signs in with it. Then the
	// admin deactivates her: her app returns to sign-in again.
	waitJS(t, admin, `!document.getElementById("dialog").open`, 3*time.Second)
	amara := `[...document.querySelectorAll(".admin-item")].find(li => li.textContent.includes("Amara Okafor"))`
	waitJS(t, admin, `!!`+amara+`?.querySelector("[data-act=issue]")`, 5*time.Second)
	eval[bool](t, admin, amara+`.querySelector("[data-act=issue]").click() || true`)
	waitJS(t, admin, `document.getElementById("dialog").open && !!document.querySelector("#secret")`, 5*time.Second)
	key2 := eval[string](t, admin, `document.querySelector("#secret").value`)
	if key2 == key || !strings.HasPrefix(key2, "obx_") {
		t.Fatalf("second key shown = %q", key2)
	}
	do(t, admin, chromedp.KeyEvent("\x1b"))
	waitJS(t, admin, `!document.getElementById("dialog").open`, 3*time.Second)
	signInUI(t, agent, srv.base, key2)
	waitJS(t, agent, `document.getElementById("conn").dataset.state === "connected"`, 10*time.Second)

	eval[bool](t, admin, amara+`.querySelector("[data-act=deactivate]").click() || true`)
	waitJS(t, admin, `document.getElementById("dialog").open`, 3*time.Second)
	do(t, admin, chromedp.Click(chromedp.CSS(`#dialog button[value=ok]`)))
	waitJS(t, agent, `!document.getElementById("signin").hidden && document.getElementById("main").hidden`, 5*time.Second)
	waitJS(t, admin, `!!`+amara+` && `+amara+`.textContent.includes("deactivated") && !`+amara+`.querySelector("[data-act=deactivate]")`, 5*time.Second)
	var list struct {
		Agents []struct {
			Name   string
			Active bool
		}
	}
	srv.call("GET", "/api/v1/agents", tn.adminToken, nil, &list, 200)
	for _, a := range list.Agents {
		if a.Name == "Amara Okafor" && a.Active {
			t.Error("Amara is still active on the server")
		}
	}
}
