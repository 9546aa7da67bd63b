package channel

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/onebox/onebox/internal/inbox"
)

// DefaultMaxMedia is the largest inbound attachment kept
// (ONEBOX_MAX_UPLOAD's default); larger ones are stored as a note saying so.
const DefaultMaxMedia = 16 << 20

// MediaSaver keeps an attachment a customer sent and describes it. The
// media store implements it; the bytes must be durable when Save returns,
// since the webhook is acknowledged right after.
type MediaSaver interface {
	Save(ctx context.Context, tenantID string, r io.Reader, name, mime string) (*inbox.Media, error)
}

// MediaSource gives the bytes of an attachment a reply carries, for
// providers that take uploads rather than links. A media id of another
// tenant is not found.
type MediaSource interface {
	Open(ctx context.Context, tenantID, mediaID string) (io.ReadSeekCloser, inbox.MediaRecord, error)
}

// ErrTooLarge is returned by LimitReader past its limit.
var ErrTooLarge = errors.New("attachment is larger than the limit")

// LimitReader reads r and fails with ErrTooLarge once more than n bytes
// came, so a saver never keeps a truncated file as if it were whole.
func LimitReader(r io.Reader, n int64) io.Reader { return &limitReader{r: r, left: n} }

type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, ErrTooLarge
	}
	return n, err
}

// SaveFailure explains, for the note left in a message, why an
// attachment could not be kept.
func SaveFailure(err error, limit int64) error {
	switch {
	case errors.Is(err, ErrTooLarge) || inbox.ErrorCode(err) == inbox.CodeTooLarge:
		return fmt.Errorf("it is over the %s limit", SizeText(limit))
	case inbox.ErrorCode(err) == inbox.CodeInvalid:
		return fmt.Errorf("it is empty")
	}
	return fmt.Errorf("it could not be stored")
}

// SizeText renders a byte count for people.
func SizeText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", (n+1023)/1024)
	}
	return fmt.Sprintf("%d bytes", n)
}
