package httpapi

import "github.com/gofiber/fiber/v2"

// mediaGet is GET /api/v1/media/{id}: the file's bytes, to a signed-in
// agent of the owning tenant or to anyone holding a current signed URL
// (see media_serve.go).
func (s *Server) mediaGet(c *fiber.Ctx) error { return s.serveMedia(c, false) }
