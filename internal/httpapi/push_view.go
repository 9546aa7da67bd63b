package httpapi

import (
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// pushDeviceView is a registered push device as the API shows it: never
// its endpoint, keys or token, which are capabilities.
type pushDeviceView struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	ExpiresAt *time.Time `json:"expires_at"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

func viewPushDevice(d inbox.PushDevice) pushDeviceView {
	return pushDeviceView{ID: d.ID, Kind: d.Kind, ExpiresAt: d.ExpiresAt, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}
