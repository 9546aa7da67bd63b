package httpapi

import (
	"github.com/gofiber/fiber/v2"
)

// access is who may call a route.
type access int

const (
	// public routes carry their own credential (an access key, the
	// operator token, a provider signature, the WebSocket hello) or none.
	public access = iota
	// member routes need a session of any agent.
	member
	// admin routes need an admin's session; the role is checked before
	// the body is read or any id looked up.
	admin
)

type route struct {
	method string
	path   string
	access access
	handle fiber.Handler
}

// routes is the whole API in one table, so what exists and who may call it
// can be read at a glance. Paths are Fiber templates; they are also the
// "route" label of the latency metric and the access log.
func (s *Server) routes() []route {
	return []route{
		{"POST", "/api/v1/tenants", public, s.tenantCreate},
		{"POST", "/api/v1/operator/inbound", public, s.operatorInbound},
		{"GET", backupPath, public, s.operatorBackup},

		{"POST", "/api/v1/session", public, s.limitSignIn(s.sessionCreate)},
		{"DELETE", "/api/v1/session", member, s.sessionDelete},

		{"GET", "/api/v1/agents", member, s.agentsList},
		{"POST", "/api/v1/agents", admin, s.agentCreate},
		{"DELETE", "/api/v1/agents/:id", admin, s.agentDelete},
		{"GET", "/api/v1/agents/:id/keys", admin, s.agentKeysList},
		{"POST", "/api/v1/agents/:id/keys", admin, s.agentKeyCreate},
		{"DELETE", "/api/v1/agents/:id/keys/:key_id", admin, s.agentKeyDelete},

		{"GET", "/api/v1/channels", admin, s.channelsList},
		{"POST", "/api/v1/channels", admin, s.channelCreate},
		{"DELETE", "/api/v1/channels/:id", admin, s.channelDelete},

		{"GET", "/api/v1/conversations", member, s.conversationsList},
		{"GET", "/api/v1/conversations/:id", member, s.conversationGet},
		{"PATCH", "/api/v1/conversations/:id", member, s.conversationUpdate},
		{"POST", "/api/v1/conversations/:id/read", member, s.conversationRead},
		{"GET", "/api/v1/conversations/:id/messages", member, s.messagesList},
		{"POST", "/api/v1/conversations/:id/messages", member, s.messageCreate},
		{"POST", "/api/v1/messages/:id/retry", member, s.messageRetry},

		{"GET", "/api/v1/catalog/products", member, s.catalogProductsList},
		{"POST", "/api/v1/catalog/products", admin, s.catalogProductCreate},
		{"GET", "/api/v1/catalog/products/:id", member, s.catalogProductGet},
		{"PATCH", "/api/v1/catalog/products/:id", admin, s.catalogProductUpdate},
		{"DELETE", "/api/v1/catalog/products/:id", admin, s.catalogProductDelete},
		{"GET", "/api/v1/catalog/export", admin, s.catalogCSVExport},
		{"POST", "/api/v1/catalog/import", admin, s.catalogCSVImport},

		{"POST", "/api/v1/media", member, s.mediaUpload},
		// A media URL works with a bearer token or with its own signature,
		// for <img src>; the handler checks one or the other.
		{"GET", "/api/v1/media/:id", public, s.mediaGet},
		{"GET", "/api/v1/media/:id/thumbnail", public, s.mediaThumbnail},

		{"GET", "/api/v1/events", member, s.eventsList},
		{"GET", "/api/v1/ws", public, s.websocket()},

		{"GET", "/api/v1/push/webpush/key", member, s.pushWebPushKey},
		{"POST", "/api/v1/push/webpush", member, s.pushWebPushSubscribe},
		{"DELETE", "/api/v1/push/webpush", member, s.pushWebPushUnsubscribe},
		{"POST", "/api/v1/push/fcm", member, s.pushFCMRegister},
		{"DELETE", "/api/v1/push/fcm", member, s.pushFCMUnregister},
		{"GET", "/api/v1/settings/push", admin, s.settingsPushGet},
		{"PUT", "/api/v1/settings/push", admin, s.settingsPushUpdate},

		{"GET", "/webhooks/whatsapp/:channel_id", public, s.limitWebhook(s.webhookWhatsAppVerify)},
		{"POST", "/webhooks/whatsapp/:channel_id", public, s.limitWebhook(s.webhookWhatsAppReceive)},
		{"POST", "/webhooks/tiktok/:channel_id", public, s.limitWebhook(s.webhookTikTokReceive)},
		{"POST", "/webhooks/sms/:channel_id", public, s.limitWebhook(s.webhookSMSReceive)},
		{"POST", "/webhooks/meta/:channel_id/data-deletion", public, s.limitWebhook(s.webhookMetaDataDeletion)},

		{"GET", "/api/v1/audit", admin, s.auditList},
		{"GET", "/api/v1/settings/retention", admin, s.settingsRetentionGet},
		{"PUT", "/api/v1/settings/retention", admin, s.settingsRetentionUpdate},
		{"DELETE", "/api/v1/contacts/:id", admin, s.contactErase},
		{"GET", "/api/v1/contacts/:id/export", admin, s.contactExport},
		{"GET", "/privacy/deletion/:code", public, s.privacyDeletionStatus},

		{"GET", "/healthz", public, s.healthz},
		{"GET", "/readyz", public, s.readyz},
		{"GET", "/metrics", public, s.metricsGet},
	}
}

// websocket is GET /api/v1/ws. The socket authenticates with its first
// frame (browsers cannot set headers on it), so the route is public here.
func (s *Server) websocket() fiber.Handler {
	if s.ws == nil {
		return func(*fiber.Ctx) error {
			return apiErr(fiber.StatusServiceUnavailable, codeUnavailable, "live updates are not available on this server")
		}
	}
	return WebSocketHandler(s.ws)
}
