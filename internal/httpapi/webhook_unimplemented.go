package httpapi

import "github.com/gofiber/fiber/v2"

// webhookNotImplemented answers a provider webhook whose channel type has
// no adapter in Config.Webhooks. `onebox serve` wires WhatsApp, TikTok and
// SMS, so its routes never get here; a server built with fewer adapters
// does. 501 (not 404) tells a provider's dashboard the URL is right but
// this server takes no deliveries for it, and providers retry 5xx, so
// nothing sent meanwhile is lost for good.
func webhookNotImplemented(provider string) error {
	return apiErr(fiber.StatusNotImplemented, codeNotImplemented,
		provider+" webhooks are not implemented by this server")
}
