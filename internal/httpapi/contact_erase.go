package httpapi

import "github.com/gofiber/fiber/v2"

// contactErase is DELETE /api/v1/contacts/{id} (admin): 202 once the
// erasure is recorded; the server carries it out in the background. The
// answer names the request so its status can be followed.
func (s *Server) contactErase(c *fiber.Ctx) error {
	job, err := s.svc.EraseContact(c.UserContext(), principal(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{
		"confirmation_code": job.Code,
		"status":            job.Status,
		"url":               s.svc.ErasureStatusURL(job.Code),
	})
}
