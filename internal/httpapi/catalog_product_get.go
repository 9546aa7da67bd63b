package httpapi

import "github.com/gofiber/fiber/v2"

// catalogProductGet is GET /api/v1/catalog/products/{id}.
func (s *Server) catalogProductGet(c *fiber.Ctx) error {
	p, err := s.svc.GetProduct(c.UserContext(), principal(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"product": p})
}
