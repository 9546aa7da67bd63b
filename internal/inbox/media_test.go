package inbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onebox/onebox/internal/inbox"
)

func TestImportProducts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.CreateProduct(ctx, f.admin, draft("MUG-1", "Mug", 1000, "EUR")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateProduct(ctx, f.admin, draft("KEEP", "Same", 500, "EUR")); err != nil {
		t.Fatal(err)
	}
	img := f.addMedia(t, f.admin.Tenant.ID, "image/png")
	withImage := draft("CUP-1", "Cup", 700, "EUR")
	withImage.ImageSet, withImage.ImageMediaID = true, &img.ID
	rows := []inbox.ImportRow{
		{Row: 2, Draft: inbox.ProductDraft{SKU: strp("mug-1"), Price: &inbox.Price{AmountMinor: 1100, Currency: "EUR"}}}, // update by SKU, any case
		{Row: 3, Draft: withImage},
		{Row: 4, Draft: draft("KEEP", "Same", 500, "EUR")},                               // unchanged
		{Row: 5, Draft: draft("BAD-1", "Bad", 100, "EURO")},                              // currency
		{Row: 6, Draft: inbox.ProductDraft{SKU: strp("NEW-1"), Title: strp("No price")}}, // new without price
		{Row: 7, Draft: draft("cup-1", "Dup", 1, "EUR")},                                 // duplicate in the file
		{Row: 8, Err: errors.New("not valid CSV: bare quote")},
		{Row: 9, Draft: inbox.ProductDraft{Title: strp("No SKU")}},
		{Row: 10, Draft: func() inbox.ProductDraft {
			d := draft("IMG-X", "X", 1, "EUR")
			d.ImageSet, d.ImageMediaID = true, strp(uuid.NewString())
			return d
		}()},
	}
	before := f.head(t)
	dry, err := f.svc.ImportProducts(ctx, f.admin, rows, true)
	if err != nil {
		t.Fatal(err)
	}
	if f.head(t) != before {
		t.Fatal("a dry run wrote events")
	}
	res, err := f.svc.ImportProducts(ctx, f.admin, rows, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []inbox.ImportResult{dry, res} {
		if r.Created != 1 || r.Updated != 1 || r.Unchanged != 1 || len(r.Errors) != 6 {
			t.Errorf("result %+v", r)
		}
	}
	wantRows := []int{5, 6, 7, 8, 9, 10}
	for i, e := range res.Errors {
		if i < len(wantRows) && e.Row != wantRows[i] || e.Message == "" {
			t.Errorf("error %d = %+v, want row %d with a message", i, e, wantRows[i])
		}
	}
	if got := len(f.eventsSince(t, before)); got != 2 {
		t.Errorf("%d events, want 2 (one created, one updated)", got)
	}
	all, _ := f.svc.AllProducts(ctx, f.admin)
	if len(all) != 3 || all[0].SKU != "CUP-1" || all[0].Image == nil || all[2].SKU != "MUG-1" || all[2].Price.AmountMinor != 1100 || all[2].Title != "Mug" {
		t.Errorf("catalog after import: %+v", all)
	}
	if _, err := f.svc.ImportProducts(ctx, f.agent, rows, false); inbox.ErrorCode(err) != inbox.CodeForbidden {
		t.Errorf("agent import: %v", err)
	}
	if _, err := f.svc.ImportProducts(ctx, f.admin, make([]inbox.ImportRow, inbox.MaxImportRows+1), false); inbox.ErrorCode(err) != inbox.CodeInvalid {
		t.Errorf("too many rows: %v", err)
	}
}

func TestMediaRecordsAndCleanupList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sha := uuid.NewString()
	rec, created, err := f.svc.AddMedia(ctx, f.admin.Tenant.ID, inbox.MediaRecord{SHA256: sha, Mime: "image/png", Size: 5})
	if err != nil || !created {
		t.Fatalf("add: %v", err)
	}
	again, created, err := f.svc.AddMedia(ctx, f.admin.Tenant.ID, inbox.MediaRecord{SHA256: sha, Mime: "image/png", Size: 5})
	if err != nil || created || again.ID != rec.ID {
		t.Errorf("same content again: %+v created=%v %v", again, created, err)
	}
	if _, _, err := f.svc.AddMedia(ctx, f.admin.Tenant.ID, inbox.MediaRecord{SHA256: "x", Mime: "text/html"}); inbox.ErrorCode(err) != inbox.CodeInvalid {
		t.Errorf("html: %v", err)
	}
	if _, _, err := f.svc.AddMedia(ctx, uuid.NewString(), inbox.MediaRecord{SHA256: "y", Mime: "image/png"}); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Errorf("unknown tenant: %v", err)
	}
	byID, err := f.svc.MediaByID(ctx, rec.ID)
	if err != nil || byID.TenantID != f.admin.Tenant.ID {
		t.Errorf("by id: %+v, %v", byID, err)
	}

	list := func(after time.Duration) []string {
		recs, err := f.svc.UnreferencedMedia(ctx, f.clock().Add(after-inbox.MediaRetention), 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if ids := list(inbox.MediaRetention - time.Minute); len(ids) != 0 {
		t.Errorf("listed before a day: %v", ids)
	}
	if ids := list(inbox.MediaRetention + time.Minute); len(ids) != 1 || ids[0] != rec.ID {
		t.Errorf("listed after a day: %v", ids)
	}
	// An inbound attachment refers to it: off the list.
	_, err = f.svc.Receive(ctx, f.channel.ID, []inbox.Inbound{{ContactHandle: "+1", Kind: inbox.KindImage, Media: &inbox.Media{ID: rec.ID, Mime: "image/png"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ids := list(48 * time.Hour); len(ids) != 0 {
		t.Errorf("a received picture is on the list: %v", ids)
	}
	dropped, err := f.svc.DropMedia(ctx, f.admin.Tenant.ID, rec.ID, f.clock().Add(48*time.Hour))
	if err != nil || dropped {
		t.Errorf("dropping used media: dropped=%v %v", dropped, err)
	}
	// An unused one is dropped, once, and only after its day.
	lone, _, _ := f.svc.AddMedia(ctx, f.admin.Tenant.ID, inbox.MediaRecord{SHA256: uuid.NewString(), Mime: "application/pdf", Size: 1})
	if dropped, _ := f.svc.DropMedia(ctx, f.admin.Tenant.ID, lone.ID, f.clock().Add(-time.Hour)); dropped {
		t.Error("dropped before its time")
	}
	if dropped, err := f.svc.DropMedia(ctx, f.admin.Tenant.ID, lone.ID, f.clock().Add(time.Hour)); !dropped || err != nil {
		t.Errorf("not dropped: %v", err)
	}
	if _, err := f.svc.MediaByID(ctx, lone.ID); inbox.ErrorCode(err) != inbox.CodeNotFound {
		t.Errorf("dropped media still found: %v", err)
	}
	if has, _ := f.svc.MediaHasContent(ctx, f.admin.Tenant.ID, lone.SHA256); has {
		t.Error("dropped media's content is still recorded")
	}
	if ids := list(48 * time.Hour); len(ids) != 0 {
		t.Errorf("the list still has %v", ids)
	}
}

func TestMediaURLKeyIsStable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k1, err := f.svc.MediaURLKey(ctx)
	if err != nil || len(k1) < 32 {
		t.Fatalf("key: %d bytes, %v", len(k1), err)
	}
	k2, _ := f.svc.MediaURLKey(ctx)
	if string(k1) != string(k2) {
		t.Error("the key changed between calls")
	}
}
