package httpapi

import "github.com/gofiber/fiber/v2"

// catalogProductDelete is DELETE /api/v1/catalog/products/{id} (admin).
// Messages that carried the product keep their copy of it.
func (s *Server) catalogProductDelete(c *fiber.Ctx) error {
	if err := s.svc.DeleteProduct(c.UserContext(), principal(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
