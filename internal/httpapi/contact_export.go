package httpapi

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/media"
)

// contactExport is GET /api/v1/contacts/{id}/export (admin): everything
// stored about the contact as one JSON document, or with ?format=zip a zip
// holding that document (export.json) and the media files themselves
// (media/<id>-<name>).
func (s *Server) contactExport(c *fiber.Ctx) error {
	format := c.Query("format", "json")
	if format != "json" && format != "zip" {
		return invalid("format must be json or zip")
	}
	p := principal(c)
	exp, err := s.svc.ExportContact(c.UserContext(), p, c.Params("id"))
	if err != nil {
		return err
	}
	name := "contact-" + exp.Contact.ID
	if format == "json" {
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`.json"`)
		return c.JSON(exp)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	doc, err := zw.Create("export.json")
	if err != nil {
		return err
	}
	enc := json.NewEncoder(doc)
	enc.SetIndent("", "  ")
	if err := enc.Encode(exp); err != nil {
		return fmt.Errorf("export: encode: %w", err)
	}
	if s.media != nil {
		for _, id := range exp.MediaIDs() {
			if err := s.zipMedia(c, zw, p.Tenant.ID, id); err != nil {
				return err
			}
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("export: zip: %w", err)
	}
	c.Set(fiber.HeaderContentType, "application/zip")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`.zip"`)
	return c.Send(buf.Bytes())
}

// zipMedia adds one media file; media whose file is gone (a provider's
// reference never downloaded) is left out, the document still names it.
func (s *Server) zipMedia(c *fiber.Ctx, zw *zip.Writer, tenant, id string) error {
	rec, err := s.svc.TenantMedia(c.UserContext(), tenant, id)
	if inbox.ErrorCode(err) == inbox.CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	rec.TenantID = tenant
	f, _, _, err := s.media.OpenFile(rec, false)
	if err != nil {
		return nil
	}
	defer f.Close()
	name := rec.Name
	if name == "" {
		name = "file"
	}
	w, err := zw.Create("media/" + id + "-" + media.CleanName(name))
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("export: copy media: %w", err)
	}
	return nil
}
