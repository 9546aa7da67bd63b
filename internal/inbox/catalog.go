package inbox

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Catalog collections (per tenant).
const (
	CollProducts   = "products"    // product id -> Product
	CollProductSKU = "product_sku" // lower-cased sku -> product id
)

// Catalog limits.
const (
	MaxSKULen         = 64
	MaxDescriptionLen = 2000
	// MaxImportRows bounds one catalog import, which is one transaction
	// and one event per product.
	MaxImportRows = 5000
)

// Product is an item of a tenant's catalog. Agents send it into
// conversations; the message then carries a copy of it as it was at that
// moment, so later edits never change what a customer was shown.
type Product struct {
	ID           string `json:"id"`
	TenantID     string `json:"-"`
	SKU          string `json:"sku"`
	Title        string `json:"title"`
	Description  string `json:"description"`
	Price        Price  `json:"price"`
	ImageMediaID string `json:"image_media_id,omitempty"`
	// Image describes ImageMediaID's picture, with a signed URL when shown.
	Image     *Media    `json:"image,omitempty"`
	Available bool      `json:"available"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ProductDraft is a create or a partial update of a product; nil fields
// are left alone. ImageSet with a nil ImageMediaID removes the image.
type ProductDraft struct {
	SKU          *string
	Title        *string
	Description  *string
	Price        *Price
	ImageSet     bool
	ImageMediaID *string
	Available    *bool
}

// CleanSKU trims a SKU and checks it. SKUs are compared without regard to
// case, so "MUG-1" and "mug-1" cannot name two products.
func CleanSKU(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid("sku is required")
	}
	if utf8.RuneCountInString(s) > MaxSKULen {
		return "", invalid("sku is at most %d characters", MaxSKULen)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return "", invalid("sku must not contain control characters")
		}
	}
	return s, nil
}

func skuKey(sku string) string { return strings.ToLower(sku) }

// ApplyProductDraft validates d and applies it to p, reporting whether
// anything changed. Image existence is checked by the caller, which can see
// the media; here only the id's shape matters.
func ApplyProductDraft(p *Product, d ProductDraft) (bool, error) {
	next := *p
	if d.SKU != nil {
		sku, err := CleanSKU(*d.SKU)
		if err != nil {
			return false, err
		}
		next.SKU = sku
	}
	if d.Title != nil {
		t, err := CleanName("title", *d.Title, true)
		if err != nil {
			return false, err
		}
		next.Title = t
	}
	if d.Description != nil {
		desc := strings.TrimSpace(*d.Description)
		if !utf8.ValidString(desc) {
			return false, invalid("description must be UTF-8 text")
		}
		if utf8.RuneCountInString(desc) > MaxDescriptionLen {
			return false, invalid("description is at most %d characters", MaxDescriptionLen)
		}
		next.Description = desc
	}
	if d.Price != nil {
		pr := *d.Price
		pr.Currency = strings.TrimSpace(pr.Currency)
		if err := pr.Validate(); err != nil {
			return false, err
		}
		next.Price = pr
	}
	if d.ImageSet {
		next.ImageMediaID = ""
		if d.ImageMediaID != nil {
			next.ImageMediaID = strings.TrimSpace(*d.ImageMediaID)
			if next.ImageMediaID == "" {
				return false, invalid("image_media_id must be a media id, or null to remove the image")
			}
		}
		if next.ImageMediaID != p.ImageMediaID {
			next.Image = nil
		}
	}
	if d.Available != nil {
		next.Available = *d.Available
	}
	if next.SKU == "" || next.Title == "" {
		return false, invalid("sku and title are required")
	}
	if err := next.Price.Validate(); err != nil {
		return false, err
	}
	changed := next.SKU != p.SKU || next.Title != p.Title || next.Description != p.Description ||
		next.Price != p.Price || next.ImageMediaID != p.ImageMediaID || next.Available != p.Available
	*p = next
	return changed, nil
}

// ProductCaption is how a product reads in a chat: title, price (and a
// word when it is not available), then the description. Channels use it
// as an image's caption or as a text message. It stays within WhatsApp's
// 1024-character caption limit.
func ProductCaption(p Product) string {
	var b strings.Builder
	b.WriteString(p.Title)
	b.WriteByte('\n')
	b.WriteString(p.Price.String())
	if !p.Available {
		b.WriteString(" (currently unavailable)")
	}
	if p.Description != "" {
		b.WriteString("\n\n")
		b.WriteString(p.Description)
	}
	return truncateWithEllipsis(b.String(), 1024)
}

// ProductLine is a product in one short line, "Title – USD 12.50", for
// channels where every character counts (SMS).
func ProductLine(p Product) string {
	s := p.Title + " – " + p.Price.String()
	if !p.Available {
		s += " (currently unavailable)"
	}
	return s
}

func truncateWithEllipsis(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return strings.TrimRightFunc(string([]rune(s)[:n-1]), unicode.IsSpace) + "…"
}

func productIn(tx Tx, tenant, id string) (Product, error) {
	var p Product
	if err := getIn(tx, tenant, CollProducts, id, "product", &p); err != nil {
		return Product{}, err
	}
	p.TenantID = tenant
	return p, nil
}

// putProduct stores p, keeps its SKU index and its image's reference in
// step with old (zero for a new product), and announces the change. Every
// check comes before the first write, so a refused product leaves nothing
// behind in a transaction shared with others (an import).
func (s *Service) putProduct(tx Tx, old, p Product, event string) error {
	t := p.TenantID
	skuMoved := old.ID == "" || skuKey(old.SKU) != skuKey(p.SKU)
	if skuMoved {
		var other string
		err := tx.Get(tenantColl(t, CollProductSKU), skuKey(p.SKU), &other)
		if err == nil && other != p.ID {
			return Errorf(CodeConflict, "another product already has sku %q", p.SKU)
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	imageMoved := old.ImageMediaID != p.ImageMediaID
	if imageMoved && p.ImageMediaID != "" {
		rec, err := mediaIn(tx, t, p.ImageMediaID)
		if ErrorCode(err) == CodeNotFound || (err == nil && MediaKind(rec.Mime) != KindImage) {
			return invalid("image_media_id: no such image (upload it with POST /api/v1/media first)")
		}
		if err != nil {
			return err
		}
		img := rec.Media()
		p.Image = &img
	}
	if p.ImageMediaID == "" {
		p.Image = nil
	}
	if skuMoved {
		if old.ID != "" {
			if err := tx.Delete(tenantColl(t, CollProductSKU), skuKey(old.SKU)); err != nil {
				return err
			}
		}
		if err := tx.Put(tenantColl(t, CollProductSKU), skuKey(p.SKU), p.ID); err != nil {
			return err
		}
	}
	if imageMoved {
		if p.ImageMediaID != "" {
			if err := s.holdMedia(tx, t, p.ImageMediaID, productHolder(p.ID)); err != nil {
				return err
			}
		}
		if old.ImageMediaID != "" {
			if err := s.releaseMedia(tx, t, old.ImageMediaID, productHolder(p.ID)); err != nil {
				return err
			}
		}
	}
	if err := tx.Put(tenantColl(t, CollProducts), p.ID, p); err != nil {
		return err
	}
	return s.emit(tx, t, event, p)
}

func productHolder(id string) string { return "product:" + id }

// CreateProduct adds a product to the tenant's catalog (admins only).
// It is available unless the draft says otherwise.
func (s *Service) CreateProduct(ctx context.Context, p Principal, d ProductDraft) (Product, error) {
	if err := p.requireAdmin(); err != nil {
		return Product{}, err
	}
	if d.SKU == nil || d.Title == nil || d.Price == nil {
		return Product{}, invalid("sku, title and price are required")
	}
	now := s.clock()
	pr := Product{ID: s.newID(), TenantID: p.Tenant.ID, Available: true, CreatedAt: now, UpdatedAt: now}
	if _, err := ApplyProductDraft(&pr, d); err != nil {
		return Product{}, err
	}
	err := s.store.Update(ctx, func(tx Tx) error {
		return s.putProduct(tx, Product{}, pr, EventProductCreated)
	})
	if err != nil {
		return Product{}, err
	}
	return s.GetProduct(ctx, p, pr.ID)
}

// UpdateProduct changes some of a product's fields (admins only). A
// change that changes nothing writes nothing.
func (s *Service) UpdateProduct(ctx context.Context, p Principal, id string, d ProductDraft) (Product, error) {
	if err := p.requireAdmin(); err != nil {
		return Product{}, err
	}
	var out Product
	err := s.store.Update(ctx, func(tx Tx) error {
		old, err := productIn(tx, p.Tenant.ID, id)
		if err != nil {
			return err
		}
		next := old
		changed, err := ApplyProductDraft(&next, d)
		if err != nil {
			return err
		}
		out = next
		if !changed {
			return nil
		}
		next.UpdatedAt = s.clock()
		out = next
		return s.putProduct(tx, old, next, EventProductUpdated)
	})
	if err != nil {
		return Product{}, err
	}
	return s.GetProduct(ctx, p, out.ID)
}

// DeleteProduct removes a product (admins only). Messages that carried it
// keep their copy; its image is kept as long as one of them shows it.
func (s *Service) DeleteProduct(ctx context.Context, p Principal, id string) error {
	if err := p.requireAdmin(); err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx Tx) error {
		old, err := productIn(tx, p.Tenant.ID, id)
		if err != nil {
			return err
		}
		if err := tx.Delete(tenantColl(p.Tenant.ID, CollProducts), id); err != nil {
			return err
		}
		if err := tx.Delete(tenantColl(p.Tenant.ID, CollProductSKU), skuKey(old.SKU)); err != nil {
			return err
		}
		if old.ImageMediaID != "" {
			if err := s.releaseMedia(tx, p.Tenant.ID, old.ImageMediaID, productHolder(id)); err != nil {
				return err
			}
		}
		return s.emit(tx, p.Tenant.ID, EventProductDeleted, old)
	})
}

// GetProduct loads one product of the caller's tenant.
func (s *Service) GetProduct(ctx context.Context, p Principal, id string) (Product, error) {
	var out Product
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		out, err = productIn(tx, p.Tenant.ID, id)
		return err
	})
	if err != nil {
		return Product{}, err
	}
	return s.presentProduct(p.Tenant.ID, out), nil
}

// ProductFilter selects products for the catalog list and the app's
// product picker.
type ProductFilter struct {
	Q         string // in the title or the SKU, case-insensitively
	Available *bool
	Limit     int
	Cursor    string
}

// ListProducts returns a page of the tenant's products ordered by title,
// and the cursor of the next page (nil on the last).
func (s *Service) ListProducts(ctx context.Context, p Principal, f ProductFilter) ([]Product, *string, error) {
	after, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, nil, err
	}
	limit := ClampLimit(f.Limit)
	q := strings.ToLower(strings.TrimSpace(f.Q))
	var all []Product
	err = s.store.View(ctx, func(tx Tx) error {
		return scanJSON(tx, tenantColl(p.Tenant.ID, CollProducts), "", func(pr Product) bool {
			if f.Available != nil && pr.Available != *f.Available {
				return true
			}
			if q != "" && !strings.Contains(strings.ToLower(pr.Title), q) && !strings.Contains(strings.ToLower(pr.SKU), q) {
				return true
			}
			if after == "" || productPos(pr) > after {
				all = append(all, pr)
			}
			return true
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list products: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return productPos(all[i]) < productPos(all[j]) })
	var next *string
	if len(all) > limit {
		all = all[:limit]
		next = encodeCursor(productPos(all[limit-1]))
	}
	for i := range all {
		all[i] = s.presentProduct(p.Tenant.ID, all[i])
	}
	return all, next, nil
}

func productPos(p Product) string { return strings.ToLower(p.Title) + "\x00" + p.ID }

// AllProducts returns every product of the tenant ordered by SKU, for an
// export (admins only).
func (s *Service) AllProducts(ctx context.Context, p Principal) ([]Product, error) {
	if err := p.requireAdmin(); err != nil {
		return nil, err
	}
	out := []Product{}
	err := s.store.View(ctx, func(tx Tx) error {
		return scanJSON(tx, tenantColl(p.Tenant.ID, CollProducts), "", func(pr Product) bool {
			out = append(out, pr)
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("export products: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return skuKey(out[i].SKU) < skuKey(out[j].SKU) })
	return out, nil
}

// ImportRow is one product of a bulk import, matched to an existing
// product by SKU. Row is the line people see in their file; Err is set
// when the row could not even be read.
type ImportRow struct {
	Row   int
	Draft ProductDraft
	Err   error
}

// RowError says why one row of an import was not applied.
type RowError struct {
	Row     int    `json:"row"`
	SKU     string `json:"sku,omitempty"`
	Message string `json:"message"`
}

// ImportResult counts what an import did (or, in a dry run, would do).
type ImportResult struct {
	Created   int        `json:"created"`
	Updated   int        `json:"updated"`
	Unchanged int        `json:"unchanged"`
	Errors    []RowError `json:"errors"`
	DryRun    bool       `json:"dry_run"`
}

// ImportProducts creates or updates products by SKU (admins only). Rows
// that fail validation are reported with their row number and skipped;
// all the others are written together in one transaction, so an import is
// never half applied. A dry run reports the same without writing.
func (s *Service) ImportProducts(ctx context.Context, p Principal, rows []ImportRow, dryRun bool) (ImportResult, error) {
	if err := p.requireAdmin(); err != nil {
		return ImportResult{}, err
	}
	if len(rows) > MaxImportRows {
		return ImportResult{}, invalid("an import has at most %d products; split the file", MaxImportRows)
	}
	var res ImportResult
	apply := func(tx Tx) error {
		res = ImportResult{Errors: []RowError{}, DryRun: dryRun}
		seen := map[string]int{}
		for _, r := range rows {
			sku := ""
			if r.Draft.SKU != nil {
				sku = strings.TrimSpace(*r.Draft.SKU)
			}
			fail := func(err error) {
				msg := err.Error()
				var e *Error
				if errors.As(err, &e) {
					msg = e.Message
				}
				res.Errors = append(res.Errors, RowError{Row: r.Row, SKU: sku, Message: msg})
			}
			if r.Err != nil {
				fail(r.Err)
				continue
			}
			if sku == "" {
				fail(invalid("sku is required"))
				continue
			}
			if first, dup := seen[skuKey(sku)]; dup {
				fail(invalid("sku %q already appears on row %d", sku, first))
				continue
			}
			seen[skuKey(sku)] = r.Row
			if err := s.importOne(tx, p.Tenant.ID, r.Draft, &res); err != nil {
				if c := ErrorCode(err); c != CodeInvalid && c != CodeConflict {
					return err
				}
				fail(err)
			}
		}
		return nil
	}
	var err error
	if dryRun {
		err = s.store.View(ctx, func(tx Tx) error { return apply(&dryTx{Tx: tx}) })
	} else {
		err = s.store.Update(ctx, apply)
	}
	if err != nil {
		return ImportResult{}, fmt.Errorf("import products: %w", err)
	}
	return res, nil
}

// importOne applies one row. It validates everything before its first
// write, so a failing row leaves nothing behind in the shared transaction.
func (s *Service) importOne(tx Tx, tenant string, d ProductDraft, res *ImportResult) error {
	sku, err := CleanSKU(*d.SKU)
	if err != nil {
		return err
	}
	var id string
	err = tx.Get(tenantColl(tenant, CollProductSKU), skuKey(sku), &id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	now := s.clock()
	var old Product
	next := Product{ID: s.newID(), TenantID: tenant, Available: true, CreatedAt: now}
	event := EventProductCreated
	if err == nil {
		if old, err = productIn(tx, tenant, id); err != nil {
			return err
		}
		next, event = old, EventProductUpdated
		d.SKU = nil // the row's SKU only matched the product; its spelling stays
	} else if d.Title == nil || d.Price == nil {
		return invalid("title and price are required for a new product")
	}
	changed, err := ApplyProductDraft(&next, d)
	if err != nil {
		return err
	}
	if !changed && event == EventProductUpdated {
		res.Unchanged++
		return nil
	}
	next.UpdatedAt = now
	if err := s.putProduct(tx, old, next, event); err != nil {
		return err
	}
	if event == EventProductUpdated {
		res.Updated++
	} else {
		res.Created++
	}
	return nil
}

// dryTx lets an import run its checks on a read-only view: writes are
// dropped. Reads see the store as it was, which is enough because each
// row's checks only read what existed before the import (duplicate SKUs
// within the file are caught separately).
type dryTx struct{ Tx }

func (dryTx) Put(Collection, string, any) error { return nil }
func (dryTx) Delete(Collection, string) error   { return nil }
func (dryTx) Append(string, *Event) error       { return nil }
