package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestScreenshots saves the inbox and a conversation on a phone and on a
// desktop, light and dark, to the folder printed at the start of the run
// (ONEBOX_SCREENSHOTS to choose it). It also checks that nothing overflows
// the phone's width.
func TestScreenshots(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Demo Shop")
	people := []struct{ from, name, text string }{
		{"+4915100000011", "Lena Schmidt", "Hi! I ordered the blue rain jacket last week, order 10442. Can I still change the size to M?"},
		{"+4915100000012", "Marco Rossi", "Is the leather backpack waterproof?"},
		{"+4915100000013", "Aiko Tanaka", "The parcel arrived but one mug is broken 😕"},
		{"+4915100000014", "Samuel Okoro", "Do you ship to Lagos?"},
		{"+4915100000015", "Chloé Martin", "Merci ! Everything arrived on time."},
	}
	var convs []string
	for _, p := range people {
		convs = append(convs, srv.customer(tn, p.from, p.name, p.text))
	}
	// Some history in the first conversation: a reply, a note and a label.
	var sent struct{ Message struct{ ID string } }
	srv.call("POST", "/api/v1/conversations/"+convs[0]+"/messages", tn.adminToken, map[string]any{"client_id": "0b6c1f6e-6c1e-4e9b-9d7e-2f7f2a0c0001", "text": "Hello Lena! Yes, we can change it as long as it has not shipped. Let me check."}, &sent, 201)
	srv.call("POST", "/api/v1/conversations/"+convs[0]+"/messages", tn.adminToken, map[string]any{"client_id": "0b6c1f6e-6c1e-4e9b-9d7e-2f7f2a0c0002", "text": "Warehouse confirms: not picked yet. Swap to M before 3 pm.", "private": true}, nil, 201)
	srv.call("PATCH", "/api/v1/conversations/"+convs[0], tn.adminToken, map[string]any{"labels": []string{"exchange", "vip"}, "assignee_id": tn.adminID}, nil, 200)
	srv.call("PATCH", "/api/v1/conversations/"+convs[2], tn.adminToken, map[string]any{"labels": []string{"damaged"}}, nil, 200)
	srv.customer(tn, people[0].from, people[0].name, "Great, thank you! Size M please. Does it look like the photo?")
	photo := srv.upload(tn.adminToken, "rain-jacket-blue.png", testPNG(320, 220))
	srv.call("POST", "/api/v1/conversations/"+convs[0]+"/messages", tn.adminToken, map[string]any{"client_id": "0b6c1f6e-6c1e-4e9b-9d7e-2f7f2a0c0003", "text": "This is the jacket in M.", "media_id": photo}, nil, 201)
	var prod struct{ Product struct{ ID string } }
	srv.call("POST", "/api/v1/catalog/products", tn.adminToken, map[string]any{"sku": "RJ-BLUE-M", "title": "Rain jacket, blue, M", "price": map[string]any{"amount_minor": 8990, "currency": "EUR"}, "available": true}, &prod, 201)
	srv.call("POST", "/api/v1/conversations/"+convs[0]+"/messages", tn.adminToken, map[string]any{"client_id": "0b6c1f6e-6c1e-4e9b-9d7e-2f7f2a0c0004", "product_id": prod.Product.ID}, nil, 201)

	ctx := tab(t, e, false)
	signInUI(t, ctx, srv.base, tn.adminKey)
	waitJS(t, ctx, fmt.Sprintf(`document.querySelectorAll("#conv-list li").length === %d`, len(people)), 5*time.Second)
	eval[bool](t, ctx, `(localStorage.setItem("onebox-push-dismissed", "1"), document.getElementById("push-offer").hidden = true, true)`)

	shoot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.shots, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, scheme := range []string{"light", "dark"} {
		do(t, ctx, chromedp.Func(func(c context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(c, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
			return err
		}))
		for _, vp := range []struct {
			name   string
			w, h   int64
			mobile bool
		}{{"phone", 390, 844, true}, {"desktop", 1280, 800, false}} {
			opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
			if vp.mobile {
				opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
			}
			do(t, ctx, chromedp.EmulateViewport(vp.w, vp.h, opts...), chromedp.Navigate(srv.base+"/"))
			waitJS(t, ctx, fmt.Sprintf(`document.querySelectorAll("#conv-list li").length === %d`, len(people)), 5*time.Second)
			waitJS(t, ctx, `document.getElementById("conn").dataset.state === "connected"`, 5*time.Second)
			if w := eval[float64](t, ctx, `document.documentElement.scrollWidth`); w > float64(vp.w) {
				t.Errorf("%s %s: page is %v px wide, wider than the screen", vp.name, scheme, w)
			}
			shoot(fmt.Sprintf("inbox-%s-%s", vp.name, scheme))
			do(t, ctx, chromedp.Click(chromedp.CSS(convRow(convs[0]))))
			waitJS(t, ctx, `document.querySelectorAll("#msg-list li.msg").length >= 6 && [...document.querySelectorAll("#msg-list img")].every(i => i.complete && i.naturalWidth > 0)`, 5*time.Second)
			waitJS(t, ctx, fmt.Sprintf(`!document.querySelector(%q)`, convRow(convs[0])+" .badge"), 5*time.Second)
			if w := eval[float64](t, ctx, `document.documentElement.scrollWidth`); w > float64(vp.w) {
				t.Errorf("%s %s conversation: page is %v px wide", vp.name, scheme, w)
			}
			shoot(fmt.Sprintf("conversation-%s-%s", vp.name, scheme))
		}
	}
	t.Logf("screenshots written to %s", e.shots)

	// The narrowest phone the app supports: nothing overflows.
	do(t, ctx, chromedp.EmulateViewport(360, 640, chromedp.EmulateScale(1), chromedp.EmulateMobile, chromedp.EmulateTouch), chromedp.Navigate(srv.base+"/"))
	waitJS(t, ctx, fmt.Sprintf(`document.querySelectorAll("#conv-list li").length === %d`, len(people)), 5*time.Second)
	if w := eval[float64](t, ctx, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("360 px inbox: page is %v px wide", w)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS(convRow(convs[0]))))
	waitJS(t, ctx, `document.querySelectorAll("#msg-list li.msg").length >= 6`, 5*time.Second)
	if w := eval[float64](t, ctx, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("360 px conversation: page is %v px wide", w)
	}
	// Everything the page loaded came from OneBox itself.
	if other := eval[string](t, ctx, fmt.Sprintf(`performance.getEntriesByType("resource").map(r => r.name).filter(u => !u.startsWith(%q) && !u.startsWith("data:") && !u.startsWith("blob:")).join(" ")`, srv.base+"/")); other != "" {
		t.Errorf("requests to other origins: %s", other)
	}
}
