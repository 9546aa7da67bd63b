package httpapi

import (
	"context"
	"io"
	"time"

	"github.com/gofiber/fiber/v2"
)

// backupPath is the backup route; its response may take far longer than
// writeTimeout, since it is the whole database.
const (
	backupPath         = "/api/v1/operator/backup"
	backupWriteTimeout = time.Hour
)

// operatorBackup is GET /api/v1/operator/backup: a consistent copy of the
// running server's database, streamed as one bbolt file while traffic goes
// on (`onebox backup` downloads it). It takes the operator token and is off
// (404) without one.
//
// The copy is sent chunked, as it is read. If it fails part way the
// connection is cut without the final chunk, so a client never mistakes a
// truncated copy for a whole one.
func (s *Server) operatorBackup(c *fiber.Ctx) error {
	if err := s.checkOperator(c); err != nil {
		return err
	}
	if s.backup == nil {
		return apiErr(fiber.StatusServiceUnavailable, codeUnavailable, "backups are not available on this server")
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	id := requestID(c)
	go func() {
		defer cancel()
		start := time.Now()
		n, err := s.backup(ctx, pw)
		if err != nil {
			s.log.Warn("backup failed", "request_id", id, "bytes", n, "err", err)
			pw.CloseWithError(err)
			return
		}
		s.log.Info("backup sent", "request_id", id, "bytes", n, "duration", time.Since(start))
		pw.Close()
	}()
	c.Set(fiber.HeaderContentType, "application/octet-stream")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="onebox.db"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	// fasthttp closes the reader when the client goes away, which fails the
	// copy's next write and ends its read transaction.
	c.Context().SetBodyStream(&pipeBody{PipeReader: pr, cancel: cancel}, -1)
	return nil
}

// pipeBody ends the copy when fasthttp is done with the body, whatever
// the reason.
type pipeBody struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (p *pipeBody) Close() error {
	p.cancel()
	return p.PipeReader.Close()
}
