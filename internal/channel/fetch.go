package channel

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/onebox/onebox/internal/inbox"
)

// Fetcher brings a customer's attachment from a provider into the media
// store, within a size limit and a time limit. Providers differ only in how
// they hand out the download link; the download itself is the same.
type Fetcher struct {
	Media   MediaSaver // nil: attachments are not kept (a note replaces them)
	Client  *http.Client
	Max     int64         // largest attachment kept
	Timeout time.Duration // for finding and downloading one attachment
}

// WithDefaults fills the zero fields.
func (f Fetcher) WithDefaults() Fetcher {
	if f.Client == nil {
		f.Client = NewHTTPClient()
	}
	if f.Max <= 0 {
		f.Max = DefaultMaxMedia
	}
	if f.Timeout <= 0 {
		f.Timeout = 30 * time.Second
	}
	return f
}

// Start bounds the whole fetch of one attachment by the time limit, and
// says so when this server keeps no attachments.
func (f Fetcher) Start(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if f.Media == nil {
		return ctx, func() {}, fmt.Errorf("this server keeps no attachments")
	}
	ctx, cancel := context.WithTimeout(ctx, f.Timeout)
	return ctx, cancel, nil
}

// Download fetches dl and saves the body for the tenant. mime is used
// when the download does not name a type (mimeOf may derive one from the
// response; nil keeps mime). The errors are phrased for the note a
// message carries instead of the attachment.
func (f Fetcher) Download(ctx context.Context, tenantID string, dl *http.Request, name, mime string,
	mimeOf func(*http.Response) string, log *slog.Logger) (*inbox.Media, error) {
	resp, err := f.Client.Do(dl.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("the download failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the download answered %d", resp.StatusCode)
	}
	if resp.ContentLength > f.Max {
		return nil, fmt.Errorf("it is %s, over the %s limit", SizeText(resp.ContentLength), SizeText(f.Max))
	}
	if mimeOf != nil {
		mime = mimeOf(resp)
	}
	md, err := f.Media.Save(ctx, tenantID, LimitReader(resp.Body, f.Max), name, mime)
	if err != nil {
		log.Warn("attachment not stored", "err", err)
		return nil, SaveFailure(err, f.Max)
	}
	if md.Mime == "" {
		md.Mime = mime
	}
	return md, nil
}
