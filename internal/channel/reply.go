package channel

import (
	"strings"

	"github.com/onebox/onebox/internal/inbox"
)

// ReplyText is the text a reply carries to the customer: what the agent
// wrote, or for a product message without one, the product's card as
// text (title, price, description), which every provider can show.
func ReplyText(m inbox.Message) string {
	if m.Text != "" || m.Product == nil {
		return m.Text
	}
	p := m.Product
	head := p.Title
	if price := p.Price.String(); price != "" {
		head = strings.TrimSpace(head + " — " + price)
	}
	return strings.TrimSpace(head + "\n" + p.Description)
}

// ReplyMedia is the attachment a reply carries: its own, or a product's
// picture.
func ReplyMedia(m inbox.Message) *inbox.Media {
	if m.Media != nil && m.Media.ID != "" {
		return m.Media
	}
	if m.Product != nil {
		if m.Product.Image != nil && m.Product.Image.ID != "" {
			return m.Product.Image
		}
		if m.Product.ImageMediaID != "" {
			return &inbox.Media{ID: m.Product.ImageMediaID}
		}
	}
	return nil
}
