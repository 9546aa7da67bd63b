package inbox_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/inbox"
)

func strp(s string) *string { return &s }

func boolp(b bool) *bool { return &b }

func draft(sku, title string, amount int64, currency string) inbox.ProductDraft {
	return inbox.ProductDraft{SKU: &sku, Title: &title, Price: &inbox.Price{AmountMinor: amount, Currency: currency}}
}

func (f *fixture) head(t *testing.T) uint64 {
	t.Helper()
	_, head, err := f.store.Events(context.Background(), f.admin.Tenant.ID, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return head
}

func (f *fixture) eventsSince(t *testing.T, since uint64) []inbox.Event {
	t.Helper()
	evs, _, err := f.store.Events(context.Background(), f.admin.Tenant.ID, since, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// addImage records a media of the tenant without a file behind it: the
// domain only needs the record.
func (f *fixture) addMedia(t *testing.T, tenant, mime string) inbox.MediaRecord {
	t.Helper()
	rec, _, err := f.svc.AddMedia(context.Background(), tenant, inbox.MediaRecord{SHA256: uuid.NewString(), Mime: mime, Size: 10, Name: "f"})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestCatalogLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	before := f.head(t)
	img := f.addMedia(t, f.admin.Tenant.ID, "image/png")
	d := draft("MUG-1", "Blue mug", 1250, "EUR")
	d.Description, d.ImageSet, d.ImageMediaID = strp("Stoneware"), true, &img.ID
	p, err := f.svc.CreateProduct(ctx, f.admin, d)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID == "" || !p.Available || p.SKU != "MUG-1" || p.Image == nil || p.Image.Mime != "image/png" || p.UpdatedAt.IsZero() {
		t.Fatalf("created %+v", p)
	}
	// Agents read, admins write.
	if _, err := f.svc.CreateProduct(ctx, f.agent, draft("X", "X", 1, "EUR")); inbox.ErrorCode(err) != inbox.CodeForbidden {
		t.Errorf("agent create: %v", err)
	}
	if _, err := f.svc.UpdateProduct(ctx, f.agent, p.ID, inbox.ProductDraft{Title: strp("x")}); inbox.ErrorCode(err) != inbox.CodeForbidden {
		t.Errorf("agent update: %v", err)
	}
	if err := f.svc.DeleteProduct(ctx, f.agent, p.ID); inbox.ErrorCode(err) != inbox.CodeForbidden {
		t.Errorf("agent delete: %v", err)
	}
	got, err := f.svc.GetProduct(ctx, f.agent, p.ID)
	if err != nil || got.Title != "Blue mug" {
		t.Fatalf("agent get: %+v, %v", got, err)
	}

	f.advance(time.Minute)
	up, err := f.svc.UpdateProduct(ctx, f.admin, p.ID, inbox.ProductDraft{Price: &inbox.Price{AmountMinor: 990, Currency: "EUR"}, Available: boolp(false), ImageSet: true})
	if err != nil {
		t.Fatal(err)
	}
	if up.Price.AmountMinor != 990 || up.Available || up.ImageMediaID != "" || up.Image != nil || !up.UpdatedAt.After(p.UpdatedAt) {
		t.Errorf("updated %+v", up)
	}
	if err := f.svc.DeleteProduct(ctx, f.admin, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GetProduct(ctx, f.admin, p.ID); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Errorf("get after delete: %v", err)
	}
	var types []string
	for _, e := range f.eventsSince(t, before) {
		types = append(types, e.Type)
	}
	if got, want := strings.Join(types, ","), "product.created,product.updated,product.deleted"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
}

func TestSKUIsUniquePerTenant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, err := f.svc.CreateProduct(ctx, f.admin, draft("SKU-1", "One", 100, "USD"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.svc.CreateProduct(ctx, f.admin, draft("SKU-2", "Two", 100, "USD"))
	if err != nil {
		t.Fatal(err)
	}
	before := f.head(t)
	if _, err := f.svc.CreateProduct(ctx, f.admin, draft("sku-1", "Again", 100, "USD")); inbox.ErrorCode(err) != inbox.CodeConflict {
		t.Errorf("same SKU in another case: %v, want conflict", err)
	}
	if _, err := f.svc.UpdateProduct(ctx, f.admin, b.ID, inbox.ProductDraft{SKU: strp(" SKU-1 ")}); inbox.ErrorCode(err) != inbox.CodeConflict {
		t.Errorf("renaming onto a used SKU: %v, want conflict", err)
	}
	if f.head(t) != before {
		t.Error("refused writes appended events")
	}
	// A freed SKU can be taken; renaming keeps the index right.
	if _, err := f.svc.UpdateProduct(ctx, f.admin, a.ID, inbox.ProductDraft{SKU: strp("SKU-1b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.UpdateProduct(ctx, f.admin, b.ID, inbox.ProductDraft{SKU: strp("sku-1")}); err != nil {
		t.Errorf("taking a freed SKU: %v", err)
	}
	if _, err := f.svc.CreateProduct(ctx, f.admin, draft("SKU-1B", "x", 1, "USD")); inbox.ErrorCode(err) != inbox.CodeConflict {
		t.Errorf("the renamed SKU is not taken: %v", err)
	}
	// Another tenant has its own SKUs.
	_, _, _, key, _ := f.svc.CreateTenant(ctx, "Other")
	other, _, err := f.svc.SignIn(ctx, key, inbox.Device{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateProduct(ctx, other, draft("SKU-1b", "Theirs", 1, "JPY")); err != nil {
		t.Errorf("another tenant's SKU: %v", err)
	}
	if _, err := f.svc.GetProduct(ctx, other, a.ID); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Errorf("another tenant reads a product: %v", err)
	}
}

func TestProductImageMustBeTheTenantsImage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pdf := f.addMedia(t, f.admin.Tenant.ID, "application/pdf")
	_, _, _, key, _ := f.svc.CreateTenant(ctx, "Other")
	other, _, _ := f.svc.SignIn(ctx, key, inbox.Device{})
	theirs := f.addMedia(t, other.Tenant.ID, "image/jpeg")
	before := f.head(t)
	for name, id := range map[string]string{"pdf": pdf.ID, "other tenant's": theirs.ID, "unknown": uuid.NewString()} {
		d := draft("S-"+name, "T", 1, "EUR")
		d.ImageSet, d.ImageMediaID = true, &id
		if _, err := f.svc.CreateProduct(ctx, f.admin, d); inbox.ErrorCode(err) != inbox.CodeInvalid {
			t.Errorf("%s image: %v, want invalid", name, err)
		}
	}
	if f.head(t) != before {
		t.Error("refused products appended events")
	}
}

func TestListProducts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i, title := range []string{"Tea pot", "blue mug", "Apron", "Mug cosy", "Zebra print"} {
		d := draft("SKU-"+string(rune('A'+i)), title, int64(100*i), "GBP")
		if title == "Mug cosy" {
			d.Available = boolp(false)
		}
		if _, err := f.svc.CreateProduct(ctx, f.admin, d); err != nil {
			t.Fatal(err)
		}
	}
	titles := func(ps []inbox.Product) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Title)
		}
		return strings.Join(s, ",")
	}
	all, next, err := f.svc.ListProducts(ctx, f.agent, inbox.ProductFilter{})
	if err != nil || next != nil || titles(all) != "Apron,blue mug,Mug cosy,Tea pot,Zebra print" {
		t.Errorf("all = %s (next %v, %v)", titles(all), next, err)
	}
	mugs, _, _ := f.svc.ListProducts(ctx, f.agent, inbox.ProductFilter{Q: "MUG"})
	if titles(mugs) != "blue mug,Mug cosy" {
		t.Errorf("q=MUG: %s", titles(mugs))
	}
	bySKU, _, _ := f.svc.ListProducts(ctx, f.agent, inbox.ProductFilter{Q: "sku-c"})
	if titles(bySKU) != "Apron" {
		t.Errorf("q=sku-c: %s", titles(bySKU))
	}
	avail, _, _ := f.svc.ListProducts(ctx, f.agent, inbox.ProductFilter{Q: "mug", Available: boolp(true)})
	if titles(avail) != "blue mug" {
		t.Errorf("available mugs: %s", titles(avail))
	}
	var paged []inbox.Product
	cursor := ""
	for pages := 0; pages < 5; pages++ {
		page, next, err := f.svc.ListProducts(ctx, f.agent, inbox.ProductFilter{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if next == nil {
			break
		}
		cursor = *next
	}
	if titles(paged) != titles(all) {
		t.Errorf("paged = %s, want %s", titles(paged), titles(all))
	}
	if _, _, err := f.svc.ListProducts(ctx, f.agent, inbox.ProductFilter{Cursor: "!!"}); inbox.ErrorCode(err) != inbox.CodeInvalid {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestProductMessageKeepsItsSnapshot(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	img := f.addMedia(t, f.admin.Tenant.ID, "image/jpeg")
	d := draft("TEA-1", "Green tea", 1200, "JPY")
	d.Description, d.ImageSet, d.ImageMediaID = strp("Sencha, 100 g"), true, &img.ID
	p, err := f.svc.CreateProduct(ctx, f.admin, d)
	if err != nil {
		t.Fatal(err)
	}
	conv := f.receive(t, "+15550100", "w1", "Do you have green tea?").Message.ConversationID
	m, created, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), ProductID: p.ID})
	if err != nil || !created {
		t.Fatalf("send product: %v", err)
	}
	if m.Kind != inbox.KindProduct || m.Text != "" || m.Product == nil || m.Product.ID != p.ID || m.Product.Price.AmountMinor != 1200 || m.Status != inbox.MsgPending {
		t.Fatalf("message = %+v", m)
	}
	// The product changes, then goes away; the message still shows what
	// the customer was sent.
	if _, err := f.svc.UpdateProduct(ctx, f.admin, p.ID, inbox.ProductDraft{Title: strp("Matcha"), Price: &inbox.Price{AmountMinor: 3000, Currency: "JPY"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteProduct(ctx, f.admin, p.ID); err != nil {
		t.Fatal(err)
	}
	msgs, err := f.svc.ListMessages(ctx, f.agent, conv, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := msgs[len(msgs)-1].Product
	if got == nil || got.Title != "Green tea" || got.Price != (inbox.Price{AmountMinor: 1200, Currency: "JPY"}) || got.Description != "Sencha, 100 g" || got.ImageMediaID != img.ID {
		t.Errorf("snapshot after the product changed: %+v", got)
	}
	if inbox.ProductCaption(*got) != "Green tea\nJPY 1,200\n\nSencha, 100 g" {
		t.Errorf("caption %q", inbox.ProductCaption(*got))
	}
	// The snapshot's picture is still in use, so it is not cleaned up.
	old, err := f.svc.UnreferencedMedia(ctx, f.clock().Add(48*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range old {
		if r.ID == img.ID {
			t.Error("the picture of a sent product is on the cleanup list")
		}
	}
	// A product with a caption: text goes with it.
	p2, _ := f.svc.CreateProduct(ctx, f.admin, draft("TEA-2", "Black tea", 900, "JPY"))
	m2, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), ProductID: p2.ID, Text: " This one is popular "})
	if err != nil || m2.Text != "This one is popular" || m2.Kind != inbox.KindProduct {
		t.Errorf("product with caption: %+v, %v", m2, err)
	}
}

func TestSendMedia(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conv := f.receive(t, "+15550200", "w1", "Here is a photo").Message.ConversationID
	for mime, kind := range map[string]string{"image/jpeg": "image", "audio/ogg": "audio", "video/mp4": "video", "application/pdf": "file"} {
		rec := f.addMedia(t, f.admin.Tenant.ID, mime)
		m, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), MediaID: rec.ID})
		if err != nil {
			t.Fatalf("%s: %v", mime, err)
		}
		if m.Kind != kind || m.Media == nil || m.Media.ID != rec.ID || m.Media.Mime != mime || m.Text != "" {
			t.Errorf("%s: message %+v", mime, m)
		}
	}
	note, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), MediaID: f.addMedia(t, f.admin.Tenant.ID, "image/png").ID, Private: true, Text: "screenshot"})
	if err != nil || note.Kind != inbox.KindNote || note.Media == nil {
		t.Errorf("note with a picture: %+v, %v", note, err)
	}

	_, _, _, key, _ := f.svc.CreateTenant(ctx, "Other")
	other, _, _ := f.svc.SignIn(ctx, key, inbox.Device{})
	theirs := f.addMedia(t, other.Tenant.ID, "image/jpeg")
	mine := f.addMedia(t, f.admin.Tenant.ID, "image/jpeg")
	before := f.head(t)
	for name, d := range map[string]inbox.Draft{
		"unknown media":     {MediaID: uuid.NewString()},
		"another tenant's":  {MediaID: theirs.ID},
		"unknown product":   {ProductID: uuid.NewString()},
		"media and product": {MediaID: mine.ID, ProductID: uuid.NewString()},
		"nothing":           {Text: "  "},
	} {
		d.ClientID = uuid.NewString()
		if _, _, err := f.svc.SendMessage(ctx, f.agent, conv, d); inbox.ErrorCode(err) != inbox.CodeInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if f.head(t) != before {
		t.Error("refused sends appended events")
	}
}

func TestMediaURLsAreSignedWhenShown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	signs := 0
	f.svc.SetMediaURLs(func(tenant string, m *inbox.Media) {
		signs++
		m.URL = "/signed/" + tenant + "/" + m.ID
	})
	rec := f.addMedia(t, f.admin.Tenant.ID, "image/jpeg")
	conv := f.receive(t, "+15550300", "w1", "hi").Message.ConversationID
	before := f.head(t)
	m, _, err := f.svc.SendMessage(ctx, f.agent, conv, inbox.Draft{ClientID: uuid.NewString(), MediaID: rec.ID})
	if err != nil {
		t.Fatal(err)
	}
	want := "/signed/" + f.admin.Tenant.ID + "/" + rec.ID
	if m.Media.URL != want {
		t.Errorf("returned url %q, want %q", m.Media.URL, want)
	}
	msgs, _ := f.svc.ListMessages(ctx, f.agent, conv, "", 0)
	if msgs[len(msgs)-1].Media.URL != want {
		t.Errorf("listed url %q", msgs[len(msgs)-1].Media.URL)
	}
	c := f.conversation(t, conv)
	if c.LastMessage == nil || c.LastMessage.Media == nil || c.LastMessage.Media.URL != want {
		t.Errorf("conversation's last message: %+v", c.LastMessage)
	}
	// Events carry signed URLs too, for apps that show them live.
	found := 0
	for _, e := range f.eventsSince(t, before) {
		var data struct {
			Media       *inbox.Media `json:"media"`
			LastMessage *struct {
				Media *inbox.Media `json:"media"`
			} `json:"last_message"`
		}
		json.Unmarshal(e.Data, &data)
		if (data.Media != nil && data.Media.URL == want) || (data.LastMessage != nil && data.LastMessage.Media != nil && data.LastMessage.Media.URL == want) {
			found++
		}
	}
	if found != 2 {
		t.Errorf("%d events with the signed url, want 2 (message.created, conversation.updated)", found)
	}
}
