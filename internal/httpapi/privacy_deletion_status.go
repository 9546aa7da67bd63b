package httpapi

import (
	"html/template"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// deletionPage is shown to the person who asked for deletion. It states
// what happens in general terms and never shows any of their data.
var deletionPage = template.Must(template.New("deletion").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Data deletion request</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#111;background:#fff}</style>
</head>
<body>
<main>
<h1>Data deletion request</h1>
<p>Confirmation code: <code>{{.Code}}</code></p>
<p><strong>Status: {{.Label}}</strong></p>
{{if .Completed}}<p>Completed on <time datetime="{{.CompletedISO}}">{{.CompletedText}}</time>.</p>{{end}}
{{if .NothingHeld}}<p>No data about you was held for this account.</p>
{{else}}<p>Your contact details, your conversations, the messages in them and the files you sent or received are deleted from this service's storage. A record that a deletion took place is kept, without any of your data.</p>{{end}}
</main>
</body>
</html>
`))

type deletionView struct {
	Code, Label, CompletedISO, CompletedText string
	Completed, NothingHeld                   bool
}

// privacyDeletionStatus is GET /privacy/deletion/{code}: the status of a
// deletion request, as a page or, with Accept: application/json, as
// {status, completed_at?}. Unknown codes are 404.
func (s *Server) privacyDeletionStatus(c *fiber.Ctx) error {
	job, err := s.svc.Erasure(c.UserContext(), c.Params("code"))
	if err != nil {
		return err
	}
	if strings.Contains(c.Get(fiber.HeaderAccept), fiber.MIMEApplicationJSON) {
		out := fiber.Map{"status": job.Status}
		if job.CompletedAt != nil {
			out["completed_at"] = job.CompletedAt.UTC().Format(time.RFC3339)
		}
		return c.JSON(out)
	}
	v := deletionView{Code: job.Code, NothingHeld: len(job.ContactIDs) == 0}
	switch job.Status {
	case inbox.ErasureCompleted:
		v.Label = "completed"
	case inbox.ErasureInProgress:
		v.Label = "in progress"
	default:
		v.Label = "received"
	}
	if job.CompletedAt != nil {
		v.Completed = true
		v.CompletedISO = job.CompletedAt.UTC().Format(time.RFC3339)
		v.CompletedText = job.CompletedAt.UTC().Format("2 January 2006")
	}
	var b strings.Builder
	if err := deletionPage.Execute(&b, v); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.SendString(b.String())
}
