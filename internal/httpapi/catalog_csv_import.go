package httpapi

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// catalogCSVImport is POST /api/v1/catalog/import[?dry_run=true] (admin):
// a CSV file in catalogColumns' layout, as the raw body (text/csv) or as
// the field "file" of a multipart form. Rows are matched to products by
// SKU: new SKUs are created, known ones updated. Columns left out of the
// file are left alone. Rows that fail are listed with their line number
// and the reason, and every other row is applied, all in one transaction.
func (s *Server) catalogCSVImport(c *fiber.Ctx) error {
	dryRun := false
	switch v := c.Query("dry_run"); v {
	case "", "false":
	case "true":
		dryRun = true
	default:
		return invalid("dry_run must be true or false")
	}
	var body io.Reader = bytes.NewReader(c.Body())
	if strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEMultipartForm) {
		fh, err := c.FormFile("file")
		if err != nil {
			return invalid(`a multipart import needs the CSV file in a field named "file"`)
		}
		if fh.Size > int64(s.maxUpload) {
			return apiErr(fiber.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the file is larger than %d bytes", s.maxUpload))
		}
		f, err := fh.Open()
		if err != nil {
			return fmt.Errorf("open uploaded file: %w", err)
		}
		defer f.Close()
		body = f
	} else if len(c.Body()) > s.maxUpload {
		return apiErr(fiber.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the file is larger than %d bytes", s.maxUpload))
	}
	rows, err := readCatalogCSV(body)
	if err != nil {
		return err
	}
	res, err := s.svc.ImportProducts(c.UserContext(), principal(c), rows, dryRun)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

// readCatalogCSV parses the file into one import row per record. A row
// that cannot be read becomes a row with an error; only a file without a
// usable header is refused as a whole.
func readCatalogCSV(r io.Reader) ([]inbox.ImportRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, invalid("the file is empty: the first line must name the columns, e.g. " + strings.Join(catalogColumns, ","))
	}
	if err != nil {
		return nil, invalid("the first line is not valid CSV: " + err.Error())
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, csvBOM)))
		if _, dup := col[h]; dup && h != "" {
			return nil, invalid(fmt.Sprintf("column %q appears twice", h))
		}
		col[h] = i
	}
	for _, need := range []string{"sku", "title", "price", "currency"} {
		if _, ok := col[need]; !ok {
			return nil, invalid(fmt.Sprintf("the first line must name the columns; %q is missing (columns: %s)", need, strings.Join(catalogColumns, ",")))
		}
	}
	var rows []inbox.ImportRow
	for len(rows) <= inbox.MaxImportRows {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			rows = append(rows, inbox.ImportRow{Row: pe.StartLine, Err: errors.New("not valid CSV: " + pe.Err.Error())})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read csv: %w", err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		// FieldPos is only defined for the fields of a record just read.
		line, _ := cr.FieldPos(0)
		rows = append(rows, catalogRow(line, rec, col))
	}
	return rows, nil
}

func catalogRow(line int, rec []string, col map[string]int) inbox.ImportRow {
	row := inbox.ImportRow{Row: line}
	cell := func(name string) (string, bool) {
		i, ok := col[name]
		if !ok {
			return "", false
		}
		if i >= len(rec) {
			return "", true
		}
		return rec[i], true
	}
	text := func(name string) *string {
		v, ok := cell(name)
		if !ok {
			return nil
		}
		v = csvUntext(v)
		return &v
	}
	row.Draft.SKU = text("sku")
	if t := text("title"); t != nil && strings.TrimSpace(*t) != "" {
		row.Draft.Title = t
	}
	row.Draft.Description = text("description")
	amount, _ := cell("price")
	currency, _ := cell("currency")
	if strings.TrimSpace(amount) != "" || strings.TrimSpace(currency) != "" {
		p, err := inbox.ParsePrice(amount, currency)
		if err != nil {
			row.Err = err
			return row
		}
		row.Draft.Price = &p
	}
	if v, ok := cell("available"); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "", "true", "yes", "1", "y":
			b := true
			row.Draft.Available = &b
		case "false", "no", "0", "n":
			b := false
			row.Draft.Available = &b
		default:
			row.Err = errors.New("available must be true or false")
			return row
		}
	}
	if v, ok := cell("image_media_id"); ok {
		row.Draft.ImageSet = true
		if v = strings.TrimSpace(v); v != "" {
			row.Draft.ImageMediaID = &v
		}
	}
	return row
}
