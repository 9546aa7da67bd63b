package browsertest

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// TestAdminChannelsAndCatalog: an admin connects an SMS gateway in the
// channels screen and copies the webhook URL it shows; a text the gateway
// posts there, signed with the secret typed in, reaches the inbox. Then
// the admin adds a product in the catalog screen and edits it.
func TestAdminChannelsAndCatalog(t *testing.T) {
	e := needBrowser(t)
	srv := startServer(t, e)
	tn := srv.newTenant("Admin Screens")
	gw := newGateway(t)

	ctx := tab(t, e, false)
	signInUI(t, ctx, srv.base, tn.adminKey)
	for _, p := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: p}, Setting: browser.PermissionSettingGranted, Origin: srv.base,
		}); err != nil {
			t.Fatal(err)
		}
	}

	// Channels: an SMS gateway, with its settings.
	do(t, ctx, chromedp.Navigate(srv.base+"/admin/channels"))
	waitJS(t, ctx, `!!document.querySelector("#channel-form")`, 10*time.Second)
	selectValue(t, ctx, "#channel-type", "sms")
	waitJS(t, ctx, `!!document.querySelector("#channel-form input[name=cfg_send_url]")`, 3*time.Second)
	do(t, ctx,
		chromedp.SendKeys(chromedp.CSS(`#channel-form input[name=name]`), "SMS hotline"),
		chromedp.SendKeys(chromedp.CSS(`#channel-form input[name=cfg_send_url]`), gw.srv.URL+"/send"),
		chromedp.SendKeys(chromedp.CSS(`#channel-form input[name=cfg_auth_token]`), gw.token),
		chromedp.SendKeys(chromedp.CSS(`#channel-form input[name=cfg_webhook_secret]`), smsWebhookSecret),
		chromedp.SendKeys(chromedp.CSS(`#channel-form input[name=cfg_from]`), smsNumber),
		chromedp.Click(chromedp.CSS(`#channel-form button[type=submit]`)),
	)
	item := `[...document.querySelectorAll(".admin-item")].find(li => li.textContent.includes("SMS hotline"))`
	waitJS(t, ctx, `!!`+item+`?.querySelector("[data-copy]")`, 5*time.Second)
	url := eval[string](t, ctx, item+`.querySelector(".secret-row input").value`)
	var chs struct {
		Channels []struct {
			ID, Type, Name string
			WebhookURL     string `json:"webhook_url"`
		}
	}
	srv.call("GET", "/api/v1/channels", tn.adminToken, nil, &chs, 200)
	for _, c := range chs.Channels {
		if c.Name == "SMS hotline" {
			tn.smsID = c.ID
			if c.Type != "sms" || c.WebhookURL != url || url != srv.base+"/webhooks/sms/"+c.ID {
				t.Errorf("channel %+v, page shows %q", c, url)
			}
		}
	}
	if tn.smsID == "" {
		t.Fatalf("no SMS channel on the server: %+v", chs.Channels)
	}
	if page := eval[string](t, ctx, `document.body.innerHTML`); strings.Contains(page, gw.token) || strings.Contains(page, smsWebhookSecret) {
		t.Error("a channel secret is still in the page after creating it")
	}
	click(t, ctx, `.admin-item [data-copy]`)
	waitJS(t, ctx, fmt.Sprintf(`navigator.clipboard.readText().then(s => s === %s, () => false)`, jsString(url)), 5*time.Second)

	// The channel works with what was typed: the gateway's signed callback
	// is accepted, and a reply reaches the gateway with the token.
	conv := srv.smsCustomer(tn, "+4915100000071", "Is this the hotline?")
	var sent struct{ Message message }
	srv.call("POST", "/api/v1/conversations/"+conv+"/messages", tn.adminToken, map[string]string{"text": "Yes, how can we help?", "client_id": newUUID()}, &sent, 201)
	if s := gw.waitSent("Yes, how can we help?", 10*time.Second); s.From != smsNumber {
		t.Errorf("sent from %q", s.From)
	}

	// Catalog: add a product, then edit it.
	do(t, ctx, chromedp.Navigate(srv.base+"/admin/catalog"))
	waitJS(t, ctx, `!!document.querySelector("#product-form")`, 10*time.Second)
	do(t, ctx,
		chromedp.SendKeys(chromedp.CSS(`#product-form input[name=sku]`), "TEA-7"),
		chromedp.SendKeys(chromedp.CSS(`#product-form input[name=title]`), "Green tea, 100 g"),
		chromedp.SendKeys(chromedp.CSS(`#product-form input[name=amount]`), "6,50"),
		chromedp.Click(chromedp.CSS(`#product-form button[type=submit]`)),
	)
	row := `[...document.querySelectorAll(".admin-item")].find(li => li.textContent.includes("TEA-7"))`
	waitJS(t, ctx, `!!`+row+`?.textContent.includes("Green tea, 100 g")`, 5*time.Second)
	type product struct {
		ID, SKU, Title string
		Available      bool
		Price          struct {
			AmountMinor int64 `json:"amount_minor"`
			Currency    string
		}
	}
	var list struct{ Products []product }
	srv.call("GET", "/api/v1/catalog/products", tn.adminToken, nil, &list, 200)
	if len(list.Products) != 1 || list.Products[0].Price.AmountMinor != 650 || list.Products[0].Price.Currency != "EUR" || !list.Products[0].Available {
		t.Fatalf("products after adding: %+v", list.Products)
	}
	eval[bool](t, ctx, row+`.querySelector("[data-edit]").click() || true`)
	waitJS(t, ctx, `document.getElementById("dialog").open && !!document.querySelector("#product-edit")`, 3*time.Second)
	eval[bool](t, ctx, `(() => { const f = document.querySelector("#product-edit"); f.title.value = "Green tea, 250 g"; f.amount.value = "12.90"; f.available.checked = false; return true; })()`)
	click(t, ctx, `#product-edit button[value=save]`)
	waitJS(t, ctx, `!document.getElementById("dialog").open && !!`+row+`?.textContent.includes("Green tea, 250 g") && `+row+`.textContent.includes("unavailable")`, 5*time.Second)
	var got struct{ Product product }
	srv.call("GET", "/api/v1/catalog/products/"+list.Products[0].ID, tn.adminToken, nil, &got, 200)
	if p := got.Product; p.Title != "Green tea, 250 g" || p.Price.AmountMinor != 1290 || p.Available || p.SKU != "TEA-7" {
		t.Errorf("product after editing: %+v", p)
	}
}

// newUUID is a random (version 4) UUID, as the app makes for client_id.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
