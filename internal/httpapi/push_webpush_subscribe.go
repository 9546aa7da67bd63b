package httpapi

import (
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/inbox"
)

// pushWebPushSubscribe is POST /api/v1/push/webpush with the browser's
// PushSubscription.toJSON(): {"endpoint","keys":{"p256dh","auth"},
// "expirationTime"?}. Registering the same endpoint again refreshes it;
// either way the answer is 201 with the device.
func (s *Server) pushWebPushSubscribe(c *fiber.Ctx) error {
	var in struct {
		Endpoint string `json:"endpoint"`
		Keys     struct {
			P256dh string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
		ExpirationTime json.RawMessage `json:"expirationTime"`
	}
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	expires, err := parseExpirationTime(in.ExpirationTime)
	if err != nil {
		return err
	}
	d, err := s.svc.SubscribeWebPush(c.UserContext(), principal(c), inbox.WebPushSubscription{
		Endpoint: in.Endpoint, P256dh: in.Keys.P256dh, Auth: in.Keys.Auth, ExpiresAt: expires,
	}, s.pushHosts)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"device": viewPushDevice(d)})
}

// maxExpirationMS is far enough in the future (year 33658) for any real
// subscription and small enough to convert to a time without overflow.
const maxExpirationMS = 1e15

// parseExpirationTime reads PushSubscription.expirationTime: milliseconds
// since the epoch (a DOMHighResTimeStamp, possibly fractional) or null.
func parseExpirationTime(raw json.RawMessage) (*time.Time, error) {
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var ms float64
	if err := json.Unmarshal(raw, &ms); err != nil || ms <= 0 || ms > maxExpirationMS {
		return nil, invalid("expirationTime must be milliseconds since the epoch, or null")
	}
	t := time.UnixMilli(int64(ms)).UTC()
	return &t, nil
}
