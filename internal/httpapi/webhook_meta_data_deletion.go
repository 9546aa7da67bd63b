package httpapi

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/privacy"
)

// webhookMetaDataDeletion is POST /webhooks/meta/{channel_id}/data-deletion,
// Meta's data deletion callback. The form field signed_request is checked
// with the channel's app secret; then every contact of the channel whose
// handle is the request's user_id is queued for erasure, and Meta gets the
// status page's URL and code to hand to the person.
func (s *Server) webhookMetaDataDeletion(c *fiber.Ctx) error {
	ch, err := s.svc.ChannelByID(c.UserContext(), c.Params("channel_id"))
	if err != nil {
		return err
	}
	if !isMetaChannel(ch.Type) {
		return apiErr(fiber.StatusNotFound, codeNotFound, "no Meta channel has this id")
	}
	raw := c.FormValue("signed_request")
	if raw == "" {
		return invalid("the form field signed_request is required")
	}
	sr, err := privacy.ParseSignedRequest(raw, ch.Config["app_secret"], time.Now())
	if err != nil {
		// Which check failed is logged, not told: it would help forgers.
		s.log.Warn("meta data deletion: refused", "channel", ch.ID, "err", err)
		return apiErr(fiber.StatusUnauthorized, codeUnauthorized, "the signed_request is not valid for this channel")
	}
	job, err := s.svc.RequestErasure(c.UserContext(), ch, sr.UserID, "meta", s.clientIP(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"url": s.svc.ErasureStatusURL(job.Code), "confirmation_code": job.Code})
}

// isMetaChannel tells the channel types whose people Meta may ask OneBox
// to forget.
func isMetaChannel(typ string) bool { return typ == inbox.ChannelWhatsApp }
