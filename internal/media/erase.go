package media

import (
	"context"
	"fmt"

	"github.com/onebox/onebox/internal/inbox"
)

// Erase removes a tenant's media record and its files at once, for data
// erasure, instead of waiting out inbox.MediaRetention. Media that
// something still refers to (a product's picture, another contact's
// message with the same id) is left alone, as is content another record
// shares. Erasing what is already gone is not an error.
func (s *Store) Erase(ctx context.Context, tenant, id string) error {
	rec, err := s.svc.TenantMedia(ctx, tenant, id)
	if inbox.ErrorCode(err) == inbox.CodeNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("media: erase %s: %w", id, err)
	}
	rec.TenantID = tenant
	// Released media is marked unreferenced "now"; a cutoff in the future
	// lets it go at once.
	cutoff := s.now().Add(inbox.MediaRetention)
	if rec.SHA256 == "" {
		_, err := s.svc.DropMedia(ctx, tenant, id, cutoff)
		return err
	}
	unlock := s.lock(tenant, rec.SHA256)
	defer unlock()
	dropped, err := s.svc.DropMedia(ctx, tenant, id, cutoff)
	if err != nil || !dropped {
		return err
	}
	// No grace: an erasure cannot wait for uploads that may never come.
	return s.removeIfUnused(ctx, tenant, rec.SHA256, 0)
}
