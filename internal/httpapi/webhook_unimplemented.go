package httpapi

import "github.com/gofiber/fiber/v2"

// webhookNotImplemented answers provider webhooks until the channel
// adapters exist. 501 (not 404) tells a provider's dashboard the URL is
// right but the server cannot take deliveries yet, and providers retry 5xx,
// so nothing sent meanwhile is lost for good.
func webhookNotImplemented(provider string) error {
	return apiErr(fiber.StatusNotImplemented, codeNotImplemented,
		provider+" webhooks are not implemented by this server yet")
}
