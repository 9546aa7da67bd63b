package httpapi

import (
	"log/slog"

	"github.com/gofiber/fiber/v2"
)

// healthz is GET /healthz: the process is up and answering. It checks
// nothing else, so an orchestrator restarts the process only when it is
// truly stuck, not when a dependency is.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz is GET /readyz: the server can do its work (store open) and is not
// shutting down. The reason for a failure is logged, not shown: it may name
// paths on disk.
func (s *Server) readyz(c *fiber.Ctx) error {
	if s.draining.Load() {
		return apiErr(fiber.StatusServiceUnavailable, codeUnavailable, "the server is shutting down")
	}
	if err := s.ready(); err != nil {
		s.log.LogAttrs(c.UserContext(), slog.LevelWarn, "not ready",
			slog.String("request_id", requestID(c)), slog.Any("err", err))
		return apiErr(fiber.StatusServiceUnavailable, codeUnavailable, "the server is not ready")
	}
	return c.JSON(fiber.Map{"status": "ok"})
}
