package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// catalogProductsList is GET /api/v1/catalog/products?q=&available=&limit=&cursor=:
// the tenant's products by title; q searches titles and SKUs, and
// available=true keeps what can be offered to a customer right now.
func (s *Server) catalogProductsList(c *fiber.Ctx) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	f := inbox.ProductFilter{Q: c.Query("q"), Limit: limit, Cursor: c.Query("cursor")}
	switch v := c.Query("available"); v {
	case "":
	case "true", "false":
		b := v == "true"
		f.Available = &b
	default:
		return invalid("available must be true or false")
	}
	products, next, err := s.svc.ListProducts(c.UserContext(), principal(c), f)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"products": nonNil(products), "next_cursor": next})
}
