package httpapi

import (
	"bytes"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/onebox/onebox/internal/metrics"
)

// metricsGet is GET /metrics in the Prometheus text format. It is
// unauthenticated like most exporters; it carries counts and latencies,
// no tenant data. Operators who expose the port publicly should filter it
// at their proxy.
func (s *Server) metricsGet(c *fiber.Ctx) error {
	var b bytes.Buffer
	if _, err := s.metrics.WriteTo(&b); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	c.Set(fiber.HeaderContentType, metrics.ContentType)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(b.Bytes())
}
