package inbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Media collections. Files live outside the store (internal/media); these
// hold what is known about them and who uses them.
const (
	CollMedia     = "media"      // per tenant: media id -> MediaRecord
	CollMediaSHA  = "media_sha"  // per tenant: sha256 hex -> media id (one copy per content)
	CollMediaRefs = "media_refs" // per tenant: media id + "/" + holder -> "" (messages, products)
	CollMediaHome = "media_home" // global: media id -> tenant id (signed URLs name no tenant)
	// CollMediaUnref lists media nothing refers to, oldest first, for the
	// cleanup job: since (sortable) + "/" + tenant + "/" + media id -> "".
	CollMediaUnref = "media_unref"
)

// MediaRetention is how long media that no message or product refers to
// is kept: long enough for an agent to upload a file and send it later.
const MediaRetention = 24 * time.Hour

// MediaRecord is what the store knows about one stored file of a tenant.
// The bytes are addressed by SHA256, so one tenant keeps one copy of each
// content however often it is uploaded.
type MediaRecord struct {
	ID       string `json:"id"`
	TenantID string `json:"-"`
	SHA256   string `json:"sha256"`
	Mime     string `json:"mime"`
	Size     int64  `json:"size"`
	Name     string `json:"name,omitempty"`
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
	// Thumbnail is the type of the small preview kept beside an image
	// ("" when the image is small enough to be its own preview).
	Thumbnail string    `json:"thumbnail,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// UnrefSince is set while nothing refers to the media: the cleanup
	// job removes it MediaRetention later.
	UnrefSince *time.Time `json:"unref_since,omitempty"`
}

// Media is the record as attached to messages and products.
func (r MediaRecord) Media() Media {
	return Media{ID: r.ID, Mime: r.Mime, Size: r.Size, SHA256: r.SHA256, Name: r.Name, Width: r.Width, Height: r.Height}
}

// MediaKind is the message kind for a file of this type.
func MediaKind(mime string) string {
	switch {
	case strings.HasPrefix(mime, "image/"):
		return KindImage
	case strings.HasPrefix(mime, "audio/"):
		return KindAudio
	case strings.HasPrefix(mime, "video/"):
		return KindVideo
	}
	return KindFile
}

// documentTypes are the non-media types a customer or an agent may share:
// PDF and the common office formats.
var documentTypes = map[string]bool{
	"application/pdf":    true,
	"application/msword": true,
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document": true,
	"application/vnd.ms-excel": true,
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         true,
	"application/vnd.ms-powerpoint":                                             true,
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": true,
	"application/vnd.oasis.opendocument.text":                                   true,
	"application/vnd.oasis.opendocument.spreadsheet":                            true,
	"application/vnd.oasis.opendocument.presentation":                           true,
	"application/rtf": true,
}

// MediaAllowed reports whether OneBox stores files of this (sniffed)
// type: pictures, sound, video, PDF and office documents. Everything else,
// executables and web pages above all, is refused, and so is SVG, which
// is a picture that can carry script.
func MediaAllowed(mime string) bool {
	if mime == "image/svg+xml" {
		return false
	}
	switch MediaKind(mime) {
	case KindImage, KindAudio, KindVideo:
		return true
	}
	return documentTypes[mime]
}

func mediaIn(tx Tx, tenant, id string) (MediaRecord, error) {
	var r MediaRecord
	if err := getIn(tx, tenant, CollMedia, id, "media", &r); err != nil {
		return MediaRecord{}, err
	}
	r.TenantID = tenant
	return r, nil
}

func unrefKey(tenant, id string, since time.Time) string {
	return since.UTC().Format(sortableTime) + "/" + tenant + "/" + id
}

func (s *Service) markUnref(tx Tx, r MediaRecord, since time.Time) error {
	if r.UnrefSince != nil {
		if err := tx.Delete(global(CollMediaUnref), unrefKey(r.TenantID, r.ID, *r.UnrefSince)); err != nil {
			return err
		}
	}
	r.UnrefSince = &since
	if err := tx.Put(global(CollMediaUnref), unrefKey(r.TenantID, r.ID, since), ""); err != nil {
		return err
	}
	return tx.Put(tenantColl(r.TenantID, CollMedia), r.ID, r)
}

// holdMedia records that holder (a message or a product) refers to the
// media, which takes it off the cleanup list. An id without a record (a
// channel that kept only a provider's reference) is left alone.
func (s *Service) holdMedia(tx Tx, tenant, id, holder string) error {
	r, err := mediaIn(tx, tenant, id)
	if ErrorCode(err) == CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.Put(tenantColl(tenant, CollMediaRefs), id+"/"+holder, ""); err != nil {
		return err
	}
	if r.UnrefSince == nil {
		return nil
	}
	if err := tx.Delete(global(CollMediaUnref), unrefKey(tenant, id, *r.UnrefSince)); err != nil {
		return err
	}
	r.UnrefSince = nil
	return tx.Put(tenantColl(tenant, CollMedia), id, r)
}

// releaseMedia drops holder's reference; media left with none goes on the
// cleanup list. Code that deletes messages (erasure, retention) calls it
// for each attachment it removes.
func (s *Service) releaseMedia(tx Tx, tenant, id, holder string) error {
	if err := tx.Delete(tenantColl(tenant, CollMediaRefs), id+"/"+holder); err != nil {
		return err
	}
	r, err := mediaIn(tx, tenant, id)
	if ErrorCode(err) == CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	held, err := mediaHeld(tx, tenant, id)
	if err != nil || held || r.UnrefSince != nil {
		return err
	}
	return s.markUnref(tx, r, s.clock())
}

func mediaHeld(tx Tx, tenant, id string) (bool, error) {
	held := false
	err := tx.Scan(tenantColl(tenant, CollMediaRefs), id+"/", "", false, func(string, []byte) (bool, error) {
		held = true
		return false, nil
	})
	return held, err
}

func messageHolder(id string) string { return "message:" + id }

// holdAttachments makes a message's media (and its product's picture)
// count as used.
func (s *Service) holdAttachments(tx Tx, m Message) error {
	if m.Media != nil && m.Media.ID != "" {
		if err := s.holdMedia(tx, m.TenantID, m.Media.ID, messageHolder(m.ID)); err != nil {
			return err
		}
	}
	if m.Product != nil && m.Product.ImageMediaID != "" {
		return s.holdMedia(tx, m.TenantID, m.Product.ImageMediaID, messageHolder(m.ID))
	}
	return nil
}

// attachments resolves a draft's media_id or product_id into what the
// message carries: its kind, the media, and a copy of the product as it is
// now.
func attachments(tx Tx, tenant string, d Draft) (string, *Media, *Product, error) {
	switch {
	case d.MediaID != "":
		r, err := mediaIn(tx, tenant, d.MediaID)
		if ErrorCode(err) == CodeNotFound {
			return "", nil, nil, invalid("media_id: no such media (upload it with POST /api/v1/media first)")
		}
		if err != nil {
			return "", nil, nil, err
		}
		m := r.Media()
		return MediaKind(r.Mime), &m, nil, nil
	case d.ProductID != "":
		p, err := productIn(tx, tenant, d.ProductID)
		if ErrorCode(err) == CodeNotFound {
			return "", nil, nil, invalid("product_id: no such product")
		}
		if err != nil {
			return "", nil, nil, err
		}
		return KindProduct, nil, &p, nil
	}
	return KindText, nil, nil, nil
}

// MediaURLs fills in a media object's signed URLs for the tenant. It
// must be cheap and do no I/O: it runs for every media object shown.
type MediaURLs func(tenant string, m *Media)

// SetMediaURLs attaches the media store's URL signer. Without one, media
// objects are shown without URLs.
func (s *Service) SetMediaURLs(f MediaURLs) { s.mediaURLs = f }

func (s *Service) presentMedia(tenant string, m *Media) *Media {
	if m == nil || s.mediaURLs == nil {
		return m
	}
	c := *m
	s.mediaURLs(tenant, &c)
	return &c
}

func (s *Service) presentProduct(tenant string, p Product) Product {
	p.Image = s.presentMedia(tenant, p.Image)
	return p
}

// presentMessage gives a message's attachments fresh URLs. Stored copies
// are never changed: the signature expires, the message does not.
func (s *Service) presentMessage(tenant string, m Message) Message {
	m.Media = s.presentMedia(tenant, m.Media)
	if m.Product != nil {
		p := s.presentProduct(tenant, *m.Product)
		m.Product = &p
	}
	return m
}

func (s *Service) presentConversation(c Conversation) Conversation {
	if c.LastMessage != nil {
		m := s.presentMessage(c.TenantID, *c.LastMessage)
		c.LastMessage = &m
	}
	return c
}

// needsPresenting reports whether present would change data.
func needsPresenting(data any) bool {
	switch v := data.(type) {
	case Message:
		return v.Media != nil || v.Product != nil
	case Conversation:
		return v.LastMessage != nil && (v.LastMessage.Media != nil || v.LastMessage.Product != nil)
	case Product:
		return v.Image != nil
	}
	return false
}

// present prepares an event's data for the apps.
func (s *Service) present(tenant string, data any) any {
	if s.mediaURLs == nil {
		return data
	}
	switch v := data.(type) {
	case Message:
		return s.presentMessage(tenant, v)
	case Conversation:
		v.TenantID = tenant
		return s.presentConversation(v)
	case Product:
		return s.presentProduct(tenant, v)
	}
	return data
}

// AddMedia records a stored file for a tenant. When the tenant already
// has the same content, the existing record is returned (created false)
// and kept for another MediaRetention if nothing uses it yet.
func (s *Service) AddMedia(ctx context.Context, tenant string, r MediaRecord) (MediaRecord, bool, error) {
	if !MediaAllowed(r.Mime) {
		return MediaRecord{}, false, invalid("files of type %s are not accepted", r.Mime)
	}
	created := false
	var out MediaRecord
	err := s.store.Update(ctx, func(tx Tx) error {
		created, out = false, MediaRecord{} // a store may run the fn more than once
		var t Tenant
		if err := tx.Get(global(CollTenants), tenant, &t); err != nil {
			if errors.Is(err, ErrNotFound) {
				return notFound("tenant")
			}
			return err
		}
		now := s.clock()
		var id string
		err := tx.Get(tenantColl(tenant, CollMediaSHA), r.SHA256, &id)
		if err == nil {
			if out, err = mediaIn(tx, tenant, id); err != nil {
				return err
			}
			if out.UnrefSince != nil {
				return s.markUnref(tx, out, now)
			}
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		out = r
		out.ID, out.TenantID, out.CreatedAt, out.UnrefSince = s.newID(), tenant, now, nil
		if err := tx.Put(tenantColl(tenant, CollMediaSHA), out.SHA256, out.ID); err != nil {
			return err
		}
		if err := tx.Put(global(CollMediaHome), out.ID, tenant); err != nil {
			return err
		}
		created = true
		return s.markUnref(tx, out, now)
	})
	if err != nil {
		return MediaRecord{}, false, fmt.Errorf("add media: %w", err)
	}
	return out, created, nil
}

// MediaOf loads one media record of the caller's tenant.
func (s *Service) MediaOf(ctx context.Context, p Principal, id string) (MediaRecord, error) {
	return s.TenantMedia(ctx, p.Tenant.ID, id)
}

// TenantMedia loads one media record of a tenant, for components that act
// for a tenant without a signed-in agent (channels sending a message).
func (s *Service) TenantMedia(ctx context.Context, tenant, id string) (MediaRecord, error) {
	var r MediaRecord
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		r, err = mediaIn(tx, tenant, id)
		return err
	})
	return r, err
}

// MediaByID finds a media record and its tenant from the id alone, for
// signed URLs, which name no tenant: the signature is checked against the
// tenant found here.
func (s *Service) MediaByID(ctx context.Context, id string) (MediaRecord, error) {
	var r MediaRecord
	err := s.store.View(ctx, func(tx Tx) error {
		var tenant string
		if err := tx.Get(global(CollMediaHome), id, &tenant); err != nil {
			if errors.Is(err, ErrNotFound) {
				return notFound("media")
			}
			return err
		}
		var err error
		r, err = mediaIn(tx, tenant, id)
		return err
	})
	return r, err
}

// MediaHasContent reports whether the tenant has a record for this
// content, so a file on disk without one can be recognised as left over.
func (s *Service) MediaHasContent(ctx context.Context, tenant, sha string) (bool, error) {
	found := false
	err := s.store.View(ctx, func(tx Tx) error {
		var id string
		err := tx.Get(tenantColl(tenant, CollMediaSHA), sha, &id)
		if err == nil {
			found = true
			return nil
		}
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
	return found, err
}

// UnreferencedMedia lists up to limit media that nothing has referred to
// since before cutoff, oldest first.
func (s *Service) UnreferencedMedia(ctx context.Context, cutoff time.Time, limit int) ([]MediaRecord, error) {
	var out []MediaRecord
	end := cutoff.UTC().Format(sortableTime) + "~"
	err := s.store.View(ctx, func(tx Tx) error {
		return tx.Scan(global(CollMediaUnref), "", "", false, func(k string, _ []byte) (bool, error) {
			if k > end || len(out) >= limit {
				return false, nil
			}
			parts := strings.SplitN(k, "/", 3)
			if len(parts) != 3 {
				return true, nil
			}
			r, err := mediaIn(tx, parts[1], parts[2])
			if ErrorCode(err) == CodeNotFound {
				r = MediaRecord{ID: parts[2], TenantID: parts[1]}
			} else if err != nil {
				return false, err
			}
			out = append(out, r)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list unreferenced media: %w", err)
	}
	return out, nil
}

// DropMedia deletes a media record if it is still unreferenced since
// before cutoff, and reports whether it did. The caller removes the file
// afterwards, unless another record of the tenant has the same content.
func (s *Service) DropMedia(ctx context.Context, tenant, id string, cutoff time.Time) (bool, error) {
	dropped := false
	err := s.store.Update(ctx, func(tx Tx) error {
		dropped = false // a store may run the fn more than once
		r, err := mediaIn(tx, tenant, id)
		if ErrorCode(err) == CodeNotFound {
			// Only the cleanup entry is left: remove it.
			return dropUnrefEntries(tx, tenant, id, cutoff)
		}
		if err != nil {
			return err
		}
		if r.UnrefSince == nil || r.UnrefSince.After(cutoff) {
			return nil
		}
		if held, err := mediaHeld(tx, tenant, id); err != nil || held {
			return err
		}
		if err := tx.Delete(global(CollMediaUnref), unrefKey(tenant, id, *r.UnrefSince)); err != nil {
			return err
		}
		var shaOwner string
		if err := tx.Get(tenantColl(tenant, CollMediaSHA), r.SHA256, &shaOwner); err == nil && shaOwner == id {
			if err := tx.Delete(tenantColl(tenant, CollMediaSHA), r.SHA256); err != nil {
				return err
			}
		}
		if err := tx.Delete(global(CollMediaHome), id); err != nil {
			return err
		}
		dropped = true
		return tx.Delete(tenantColl(tenant, CollMedia), id)
	})
	if err != nil {
		return false, fmt.Errorf("drop media: %w", err)
	}
	return dropped, nil
}

func dropUnrefEntries(tx Tx, tenant, id string, cutoff time.Time) error {
	return dropDueEntries(tx, CollMediaUnref, tenant, id, cutoff)
}

// settingMediaURLKey names the server's secret for signing media URLs in
// the global settings collection.
const settingMediaURLKey = "media_url_key"

// MediaURLKey returns the server's secret for signing media URLs, making
// it on first use. It lives in the store, so URLs stay valid across
// restarts, and never leaves the server.
func (s *Service) MediaURLKey(ctx context.Context) ([]byte, error) {
	var key []byte
	err := s.store.Update(ctx, func(tx Tx) error {
		err := tx.Get(global(CollSettings), settingMediaURLKey, &key)
		if err == nil && len(key) >= 32 {
			return nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		key = make([]byte, 32)
		rand.Read(key) // never fails on supported platforms (crypto/rand docs)
		return tx.Put(global(CollSettings), settingMediaURLKey, key)
	})
	if err != nil {
		return nil, fmt.Errorf("load media URL key: %w", err)
	}
	return key, nil
}
