package httpapi

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"
)

// catalogProductUpdate is PATCH /api/v1/catalog/products/{id} (admin):
// the fields given are changed, the others kept.
func (s *Server) catalogProductUpdate(c *fiber.Ctx) error {
	var fields map[string]json.RawMessage
	if err := decodeBody(c, &fields); err != nil {
		return err
	}
	d, err := parseProductDraft(fields)
	if err != nil {
		return err
	}
	p, err := s.svc.UpdateProduct(c.UserContext(), principal(c), c.Params("id"), d)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"product": p})
}
