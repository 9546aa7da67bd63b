package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/gofiber/fiber/v2"
)

// tenantCreate is POST /api/v1/tenants: the operator creates an
// organization and receives its first admin's access key, once.
//
// Without an operator token configured the route does not exist (404, like
// any unknown path), so a server cannot be probed for it.
func (s *Server) tenantCreate(c *fiber.Ctx) error {
	if err := s.checkOperator(c); err != nil {
		return err
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	t, adminAgent, key, raw, err := s.svc.CreateTenant(c.UserContext(), req.Name)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{
		"tenant":     t,
		"admin":      viewAgent(adminAgent),
		"key":        viewKey(key),
		"access_key": raw,
	})
}

// checkOperator admits the operator's bearer token on operator routes.
func (s *Server) checkOperator(c *fiber.Ctx) error {
	if s.operator == nil {
		return fiber.ErrNotFound
	}
	tok, ok := bearer(c)
	if !ok {
		return errNoToken()
	}
	// Comparing hashes keeps the comparison constant-time whatever the
	// candidate's length.
	sum := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(sum[:], s.operator[:]) != 1 {
		return apiErr(fiber.StatusUnauthorized, codeUnauthorized, "wrong operator token")
	}
	return nil
}
