package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

type productJSON struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Price       struct {
		AmountMinor int64  `json:"amount_minor"`
		Currency    string `json:"currency"`
	} `json:"price"`
	ImageMediaID string     `json:"image_media_id"`
	Image        *mediaJSON `json:"image"`
	Available    bool       `json:"available"`
	UpdatedAt    string     `json:"updated_at"`
}

func (h *harness) createProduct(token string, body map[string]any) productJSON {
	h.t.Helper()
	var got struct{ Product productJSON }
	h.want(h.req("POST", "/api/v1/catalog/products", token, body), 201).json(h.t, &got)
	return got.Product
}

func price(amount any, currency string) map[string]any {
	return map[string]any{"amount_minor": amount, "currency": currency}
}

func TestCatalogProductsAPI(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	img := h.uploadOK(tm.adminToken, "mug.png", pngBytes(t, 400, 400))
	p := h.createProduct(tm.adminToken, map[string]any{
		"sku": "MUG-1", "title": "Blue mug", "description": "350 ml", "price": price(1250, "EUR"), "image_media_id": img.ID,
	})
	if p.ID == "" || p.SKU != "MUG-1" || !p.Available || p.Price.AmountMinor != 1250 || p.Price.Currency != "EUR" ||
		p.ImageMediaID != img.ID || p.Image == nil || p.Image.URL == "" || p.UpdatedAt == "" {
		t.Fatalf("created %+v", p)
	}
	h.want(h.req("GET", p.Image.URL, "", nil), 200)
	h.createProduct(tm.adminToken, map[string]any{"sku": "TEA-1", "title": "Green tea", "price": price(1200, "JPY"), "available": false})

	before := h.head(tm.adminToken)
	for name, body := range map[string]any{
		"sku taken":         map[string]any{"sku": "mug-1", "title": "x", "price": price(1, "EUR")},
		"no price":          map[string]any{"sku": "A", "title": "x"},
		"fractional amount": map[string]any{"sku": "A", "title": "x", "price": price(12.5, "EUR")},
		"unknown currency":  map[string]any{"sku": "A", "title": "x", "price": price(1, "EUX")},
		"lower currency":    map[string]any{"sku": "A", "title": "x", "price": price(1, "eur")},
		"negative":          map[string]any{"sku": "A", "title": "x", "price": price(-1, "EUR")},
		"huge":              map[string]any{"sku": "A", "title": "x", "price": price(int64(1)<<60, "EUR")},
		"price a string":    map[string]any{"sku": "A", "title": "x", "price": "12.50 EUR"},
		"no title":          map[string]any{"sku": "A", "price": price(1, "EUR")},
		"image not media":   map[string]any{"sku": "A", "title": "x", "price": price(1, "EUR"), "image_media_id": "nope"},
		"available string":  map[string]any{"sku": "A", "title": "x", "price": price(1, "EUR"), "available": "yes"},
		"malformed":         raw(`{"sku":`),
	} {
		r := h.req("POST", "/api/v1/catalog/products", tm.adminToken, body)
		if name == "sku taken" {
			checkErr(t, r, 409, "conflict")
		} else {
			checkErr(t, r, 400, "invalid")
		}
	}
	h.unchanged(tm.adminToken, before)

	// Agents read and search; they do not write.
	checkErr(t, h.req("POST", "/api/v1/catalog/products", tm.agentToken, map[string]any{"sku": "B", "title": "x", "price": price(1, "EUR")}), 403, "forbidden")
	var list struct {
		Products   []productJSON `json:"products"`
		NextCursor *string       `json:"next_cursor"`
	}
	h.want(h.req("GET", "/api/v1/catalog/products?q=mug&available=true", tm.agentToken, nil), 200).json(t, &list)
	if len(list.Products) != 1 || list.Products[0].ID != p.ID || list.NextCursor != nil {
		t.Errorf("search = %+v", list)
	}
	h.want(h.req("GET", "/api/v1/catalog/products?limit=1", tm.agentToken, nil), 200).json(t, &list)
	if len(list.Products) != 1 || list.Products[0].Title != "Blue mug" || list.NextCursor == nil {
		t.Fatalf("first page = %+v", list)
	}
	h.want(h.req("GET", "/api/v1/catalog/products?limit=1&cursor="+*list.NextCursor, tm.agentToken, nil), 200).json(t, &list)
	if len(list.Products) != 1 || list.Products[0].Title != "Green tea" || list.NextCursor != nil {
		t.Errorf("second page = %+v", list)
	}
	checkErr(t, h.req("GET", "/api/v1/catalog/products?available=maybe", tm.agentToken, nil), 400, "invalid")

	var got struct{ Product productJSON }
	h.want(h.req("PATCH", "/api/v1/catalog/products/"+p.ID, tm.adminToken, map[string]any{"available": false, "image_media_id": nil}), 200).json(t, &got)
	if got.Product.Available || got.Product.ImageMediaID != "" || got.Product.Image != nil || got.Product.Title != "Blue mug" {
		t.Errorf("patched %+v", got.Product)
	}
	checkErr(t, h.req("PATCH", "/api/v1/catalog/products/"+p.ID, tm.agentToken, map[string]any{"title": "x"}), 403, "forbidden")
	h.want(h.req("DELETE", "/api/v1/catalog/products/"+p.ID, tm.adminToken, nil), 204)
	checkErr(t, h.req("GET", "/api/v1/catalog/products/"+p.ID, tm.agentToken, nil), 404, "not_found")

	// Open apps learn of catalog changes from the log.
	var ev struct {
		Events []struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"events"`
	}
	h.want(h.req("GET", "/api/v1/events?since=0&limit=200", tm.agentToken, nil), 200).json(t, &ev)
	var types []string
	for _, e := range ev.Events {
		if strings.HasPrefix(e.Type, "product.") {
			types = append(types, e.Type)
		}
	}
	if got := strings.Join(types, ","); got != "product.created,product.created,product.updated,product.deleted" {
		t.Errorf("catalog events: %s", got)
	}
}

func TestCatalogTenantIsolation(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	a, b := h.newTeam("Acme"), h.newTeam("Globex")
	p := h.createProduct(a.adminToken, map[string]any{"sku": "X-1", "title": "Secret", "price": price(100, "USD")})
	checkErr(t, h.req("GET", "/api/v1/catalog/products/"+p.ID, b.adminToken, nil), 404, "not_found")
	checkErr(t, h.req("PATCH", "/api/v1/catalog/products/"+p.ID, b.adminToken, map[string]any{"title": "mine"}), 404, "not_found")
	checkErr(t, h.req("DELETE", "/api/v1/catalog/products/"+p.ID, b.adminToken, nil), 404, "not_found")
	var list struct{ Products []productJSON }
	h.want(h.req("GET", "/api/v1/catalog/products", b.agentToken, nil), 200).json(t, &list)
	if len(list.Products) != 0 {
		t.Errorf("B sees %d products", len(list.Products))
	}
	// B may use the same SKU.
	h.createProduct(b.adminToken, map[string]any{"sku": "X-1", "title": "Theirs", "price": price(100, "USD")})
	// B cannot send A's product.
	conv, _ := h.receive(b, "+1555", "hi")
	checkErr(t, h.req("POST", "/api/v1/conversations/"+conv+"/messages", b.agentToken, map[string]any{"client_id": newClientID(), "product_id": p.ID}), 400, "invalid")
}

type importJSON struct {
	Created   int  `json:"created"`
	Updated   int  `json:"updated"`
	Unchanged int  `json:"unchanged"`
	DryRun    bool `json:"dry_run"`
	Errors    []struct {
		Row     int    `json:"row"`
		SKU     string `json:"sku"`
		Message string `json:"message"`
	} `json:"errors"`
}

func TestCatalogCSVImportExport(t *testing.T) {
	h, _ := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	h.createProduct(tm.adminToken, map[string]any{"sku": "MUG-1", "title": "Mug", "price": price(1000, "EUR")})
	csvFile := "\ufeffSKU,Title,Description,Price,Currency,Available\n" +
		"mug-1,Mug,\"Stoneware, 350 ml\",11.00,EUR,yes\n" + // line 2: update
		"TEA-1,Green tea,,1200,JPY,true\n" + // 3: new
		"OIL-1,Olive oil,'=cheap,4.500,KWD,false\n" + // 4: new, formula-looking text kept
		"BAD-1,Bad,,12.505,USD,true\n" + // 5: too many decimals
		"BAD-2,Bad,,12,JPX,true\n" + // 6: no such currency
		",No sku,,1,EUR,\n" + // 7: no sku
		"TEA-1,Dup,,1,JPY,\n" + // 8: duplicate
		"BAD-3,\"broken,1,EUR\n" // 9: unterminated quote
	before := h.head(tm.adminToken)
	var dry importJSON
	h.want(h.req("POST", "/api/v1/catalog/import?dry_run=true", tm.adminToken, raw(csvFile), "Content-Type", "text/csv"), 200).json(t, &dry)
	h.unchanged(tm.adminToken, before)
	var res importJSON
	h.want(h.req("POST", "/api/v1/catalog/import", tm.adminToken, raw(csvFile), "Content-Type", "text/csv"), 200).json(t, &res)
	for _, r := range []importJSON{dry, res} {
		if r.Created != 2 || r.Updated != 1 || r.Unchanged != 0 {
			t.Errorf("counts %+v, want 2 created, 1 updated", r)
		}
		var rows []int
		for _, e := range r.Errors {
			rows = append(rows, e.Row)
			if e.Message == "" {
				t.Errorf("row %d error without a message", e.Row)
			}
		}
		if got, _ := json.Marshal(rows); string(got) != "[5,6,7,8,9]" {
			t.Errorf("error rows %s, want [5,6,7,8,9] (%+v)", got, r.Errors)
		}
	}
	if !dry.DryRun || res.DryRun {
		t.Errorf("dry_run flags %v, %v", dry.DryRun, res.DryRun)
	}
	if !strings.Contains(res.Errors[0].Message, "2 decimal places") || res.Errors[0].SKU != "BAD-1" {
		t.Errorf("row 5 error: %+v", res.Errors[0])
	}

	r := h.want(h.req("GET", "/api/v1/catalog/export", tm.adminToken, nil), 200)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || !strings.Contains(r.header.Get("Content-Disposition"), "catalog.csv") {
		t.Errorf("export headers: %q, %q", ct, r.header.Get("Content-Disposition"))
	}
	want := "\ufeffsku,title,description,price,currency,available,image_media_id\n" +
		"MUG-1,Mug,\"Stoneware, 350 ml\",11.00,EUR,true,\n" +
		"OIL-1,Olive oil,'=cheap,4.500,KWD,false,\n" +
		"TEA-1,Green tea,,1200,JPY,true,\n"
	if string(r.body) != want {
		t.Errorf("export:\n%s\nwant:\n%s", r.body, want)
	}
	var oil struct{ Products []productJSON }
	h.want(h.req("GET", "/api/v1/catalog/products?q=OIL-1", tm.agentToken, nil), 200).json(t, &oil)
	if len(oil.Products) != 1 || oil.Products[0].Description != "=cheap" || oil.Products[0].Price.AmountMinor != 4500 {
		t.Errorf("imported oil: %+v", oil.Products)
	}

	// The export imports back unchanged, here as a multipart upload.
	ct, body := multipartBody(t, "file", "catalog.csv", "text/csv", r.body)
	var again importJSON
	h.want(h.req("POST", "/api/v1/catalog/import", tm.adminToken, raw(body), "Content-Type", ct), 200).json(t, &again)
	if again.Unchanged != 3 || again.Created+again.Updated != 0 || len(again.Errors) != 0 {
		t.Errorf("re-import of the export: %+v", again)
	}

	for name, file := range map[string]string{
		"empty":          "",
		"missing column": "sku,title,price\nA,B,1\n",
		"twice":          "sku,sku,title,price,currency\n",
	} {
		checkErr(t, h.req("POST", "/api/v1/catalog/import", tm.adminToken, raw(file), "Content-Type", "text/csv"), 400, "invalid")
		_ = name
	}
	checkErr(t, h.req("POST", "/api/v1/catalog/import", tm.agentToken, raw(csvFile), "Content-Type", "text/csv"), 403, "forbidden")
	checkErr(t, h.req("GET", "/api/v1/catalog/export", tm.agentToken, nil), 403, "forbidden")
}

func TestCatalogImportMayExceedJSONLimit(t *testing.T) {
	// A catalog of hundreds of products is bigger than a JSON body may be;
	// the import takes the upload limit.
	h, _ := newMediaHarness(t, 1<<20)
	tm := h.newTeam("Acme")
	var b strings.Builder
	b.WriteString("sku,title,description,price,currency\n")
	for i := 0; b.Len() < 100<<10; i++ {
		fmt.Fprintf(&b, "SKU-%04d,Product %d,%s,9.99,USD\n", i, i, strings.Repeat("d", 200))
	}
	var res importJSON
	h.want(h.req("POST", "/api/v1/catalog/import", tm.adminToken, raw(b.String()), "Content-Type", "text/csv"), 200).json(t, &res)
	if res.Created < 400 || len(res.Errors) != 0 {
		t.Errorf("import of %d bytes: %+v", b.Len(), res)
	}
}
