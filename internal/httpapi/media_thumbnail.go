package httpapi

import "github.com/gofiber/fiber/v2"

// mediaThumbnail is GET /api/v1/media/{id}/thumbnail: an image's small
// preview for lists (the image itself when it is already small). The
// media's signed URL works here too.
func (s *Server) mediaThumbnail(c *fiber.Ctx) error { return s.serveMedia(c, true) }
