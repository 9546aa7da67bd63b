package httpapi

import (
	"encoding/json"

	"github.com/onebox/onebox/internal/inbox"
)

// parseProductDraft reads a product's fields from a create or update body.
// It is read field by field so that "image_media_id": null (remove the
// picture) can be told from a body without the field (keep it).
func parseProductDraft(fields map[string]json.RawMessage) (inbox.ProductDraft, error) {
	var d inbox.ProductDraft
	str := func(name string, dst **string) error {
		raw, ok := fields[name]
		if !ok {
			return nil
		}
		var v string
		if isNull(raw) || json.Unmarshal(raw, &v) != nil {
			return invalid(name + " must be a string")
		}
		*dst = &v
		return nil
	}
	for name, dst := range map[string]**string{"sku": &d.SKU, "title": &d.Title, "description": &d.Description} {
		if err := str(name, dst); err != nil {
			return d, err
		}
	}
	if raw, ok := fields["price"]; ok {
		var p struct {
			AmountMinor *json.Number `json:"amount_minor"`
			Currency    *string      `json:"currency"`
		}
		if isNull(raw) || json.Unmarshal(raw, &p) != nil || p.AmountMinor == nil || p.Currency == nil {
			return d, invalid(`price must be {"amount_minor": <whole number of minor units>, "currency": "<ISO 4217 code>"}`)
		}
		n, err := p.AmountMinor.Int64()
		if err != nil {
			return d, invalid("price.amount_minor must be a whole number of the currency's minor unit (cents for USD, yen for JPY)")
		}
		d.Price = &inbox.Price{AmountMinor: n, Currency: *p.Currency}
	}
	if raw, ok := fields["image_media_id"]; ok {
		d.ImageSet = true
		if !isNull(raw) {
			var id string
			if json.Unmarshal(raw, &id) != nil {
				return d, invalid("image_media_id must be a media id, or null to remove the image")
			}
			d.ImageMediaID = &id
		}
	}
	if raw, ok := fields["available"]; ok {
		var v bool
		if isNull(raw) || json.Unmarshal(raw, &v) != nil {
			return d, invalid("available must be true or false")
		}
		d.Available = &v
	}
	return d, nil
}
