package httpapi

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// catalogColumns is the catalog's CSV layout, the same for export and
// import, so an exported file can be edited in a spreadsheet and imported
// back. Prices are decimals in the currency's major unit ("12.50").
var catalogColumns = []string{"sku", "title", "description", "price", "currency", "available", "image_media_id"}

// csvBOM makes spreadsheet programs read the file as UTF-8.
const csvBOM = "\ufeff"

// catalogCSVExport is GET /api/v1/catalog/export (admin): every product as
// CSV, by SKU.
func (s *Server) catalogCSVExport(c *fiber.Ctx) error {
	products, err := s.svc.AllProducts(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(csvBOM)
	w := csv.NewWriter(&buf)
	if err := w.Write(catalogColumns); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for _, p := range products {
		if err := w.Write([]string{
			csvText(p.SKU), csvText(p.Title), csvText(p.Description),
			p.Price.Decimal(), p.Price.Currency, strconv.FormatBool(p.Available), p.ImageMediaID,
		}); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="catalog.csv"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(buf.Bytes())
}

// csvText guards a text cell against spreadsheet formula injection: a
// cell that starts like a formula gets a leading apostrophe, which
// spreadsheets hide and csvUntext removes on import.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func csvUntext(s string) string {
	if len(s) >= 2 && s[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(s[1])) {
		return s[1:]
	}
	return s
}
