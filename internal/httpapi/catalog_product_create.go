package httpapi

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"
)

// catalogProductCreate is POST /api/v1/catalog/products (admin): sku,
// title and price are required; a SKU the tenant already uses is a 409.
func (s *Server) catalogProductCreate(c *fiber.Ctx) error {
	var fields map[string]json.RawMessage
	if err := decodeBody(c, &fields); err != nil {
		return err
	}
	d, err := parseProductDraft(fields)
	if err != nil {
		return err
	}
	p, err := s.svc.CreateProduct(c.UserContext(), principal(c), d)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"product": p})
}
