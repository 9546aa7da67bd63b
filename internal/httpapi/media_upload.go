package httpapi

import (
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/media"
)

// codeUnsupportedType answers a file whose content is of a type OneBox
// does not store.
const codeUnsupportedType = "unsupported_media_type"

// errNoMedia answers the media routes on a server without a media store.
func errNoMedia() error {
	return apiErr(fiber.StatusServiceUnavailable, codeUnavailable, "media is not available on this server")
}

// mediaUpload is POST /api/v1/media: a multipart form with the file in the
// field "file". The type is sniffed from the bytes, never taken from the
// client; a tenant's second upload of the same bytes answers the first
// media.
func (s *Server) mediaUpload(c *fiber.Ctx) error {
	if s.media == nil {
		return errNoMedia()
	}
	fh, err := c.FormFile("file")
	if err != nil {
		return invalid(`the body must be multipart/form-data with the file in a field named "file"`)
	}
	if fh.Size > s.media.MaxSize() {
		return apiErr(fiber.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the file is larger than %d bytes", s.media.MaxSize()))
	}
	f, err := fh.Open()
	if err != nil {
		return fmt.Errorf("open uploaded file: %w", err)
	}
	defer f.Close()
	m, err := s.media.Save(c.UserContext(), principal(c).Tenant.ID, f, fh.Filename, fh.Header.Get(fiber.HeaderContentType))
	var te *media.TypeError
	if errors.As(err, &te) {
		return apiErr(fiber.StatusUnsupportedMediaType, codeUnsupportedType, te.Error())
	}
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"media": m})
}
