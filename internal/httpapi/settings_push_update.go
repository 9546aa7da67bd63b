package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// settingsPushUpdate is PUT /api/v1/settings/push {"private":bool}
// (admin). With private on, pushes carry only ids and the apps fetch the
// text over the API, so no message content passes through Google's or a
// browser vendor's servers. It answers the new setting.
func (s *Server) settingsPushUpdate(c *fiber.Ctx) error {
	var in struct {
		Private *bool `json:"private"`
	}
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if in.Private == nil {
		return invalid("private is required (true or false)")
	}
	ps, err := s.svc.SetPushSettings(c.UserContext(), principal(c), inbox.PushSettings{Private: *in.Private})
	if err != nil {
		return err
	}
	return c.JSON(ps)
}
