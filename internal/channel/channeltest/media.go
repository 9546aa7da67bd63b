package channeltest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sync"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// Media is an in-memory media store for tests of the adapters: it keeps
// bytes by tenant and id and reads them back.
type Media struct {
	mu    sync.Mutex
	files map[string][]byte
	recs  map[string]inbox.MediaRecord
}

var (
	_ channel.MediaSaver  = (*Media)(nil)
	_ channel.MediaSource = (*Media)(nil)
)

// NewMedia returns an empty store.
func NewMedia() *Media {
	return &Media{files: map[string][]byte{}, recs: map[string]inbox.MediaRecord{}}
}

// Save keeps r's bytes; it fails as the real store does when r does.
func (m *Media) Save(ctx context.Context, tenantID string, r io.Reader, name, mime string) (*inbox.Media, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, inbox.Errorf(inbox.CodeInvalid, "empty file")
	}
	sum := sha256.Sum256(b)
	id := "m-" + hex.EncodeToString(sum[:8])
	rec := inbox.MediaRecord{ID: id, TenantID: tenantID, SHA256: hex.EncodeToString(sum[:]), Mime: mime, Size: int64(len(b)), Name: name, CreatedAt: time.Now()}
	m.mu.Lock()
	m.files[tenantID+"/"+id] = b
	m.recs[tenantID+"/"+id] = rec
	m.mu.Unlock()
	md := rec.Media()
	return &md, nil
}

// Put stores bytes directly, as an upload by an agent would.
func (m *Media) Put(tenantID string, b []byte, name, mime string) inbox.Media {
	md, err := m.Save(context.Background(), tenantID, bytes.NewReader(b), name, mime)
	if err != nil {
		panic(err)
	}
	return *md
}

// Bytes returns what is kept under id, or nil.
func (m *Media) Bytes(tenantID, id string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.files[tenantID+"/"+id]
}

// Open reads back what Save kept; another tenant's id is not found.
func (m *Media) Open(ctx context.Context, tenantID, id string) (io.ReadSeekCloser, inbox.MediaRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[tenantID+"/"+id]
	if !ok {
		return nil, inbox.MediaRecord{}, inbox.Errorf(inbox.CodeNotFound, "media not found")
	}
	return nopCloser{bytes.NewReader(b)}, m.recs[tenantID+"/"+id], nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
