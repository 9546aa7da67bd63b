// Package httpapi is OneBox's HTTP face: the JSON API of CONTRACT.md, the
// WebSocket endpoint, webhooks, health and metrics endpoints, and the PWA's
// static files. It is the only package that imports Fiber, so the web
// framework can be replaced without touching the domain.
//
// Handlers are thin: decode and check the shape of the input, call one
// inbox.Service method, encode the answer. The rules (roles, tenants,
// idempotency) live in the service; the one rule enforced here as well is
// "role before lookup", so an agent calling an admin route gets 403 even
// when its body is malformed.
//
// Where CONTRACT.md is silent this package chooses, and docs/api.md should
// say so:
//
//   - POST /api/v1/messages/{id}/retry (extension) puts a failed reply back
//     in the outbox: 200 {"message"} with status "pending"; 409 conflict
//     for anything but a failed outbound message; 404 for unknown ids.
//   - limit: absent means 50, above 200 is clamped to 200, anything but a
//     whole number >= 1 is 400. since: a whole number >= 0, else 400.
//   - before= naming no message of the conversation (including another
//     tenant's) is 404, like every other id the caller cannot see.
//   - Error codes beyond the contract's: method_not_allowed (405, with an
//     Allow header), not_implemented (501: unknown HTTP methods, and a
//     webhook whose channel type has no adapter in Config.Webhooks),
//     timeout (408), window_closed (409), internal (500).
//     429 carries Retry-After.
//   - Request bodies: the Content-Type is not checked but the body must be
//     one JSON object; compressed bodies (Content-Encoding) are refused with
//     400; bodies over MaxBody are 413 on every route, before
//     authentication.
//   - Every response carries X-Request-Id (a proxy's own, if it is short
//     and plain, is kept), and the security headers of setSecurityHeaders.
//   - POST /api/v1/tenants also returns the admin's "key" object; POST
//     /api/v1/session with an empty access_key is 400, a wrong one 401.
//   - HEAD is answered wherever GET is.
package httpapi
