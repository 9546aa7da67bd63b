// Package media keeps the files that customers and agents exchange:
// uploads from the app, attachments fetched from providers, catalog
// pictures. Bytes live under the data directory, one file per content
// (named by its SHA-256) per tenant; what is known about them, and who
// uses them, lives in the store through internal/inbox.
//
// The layout is <dir>/<tenant id>/<first two hex digits>/<sha256>, with an
// image's thumbnail beside it as <sha256>.thumb, and <dir>/tmp for uploads
// in progress (on the same file system, so finishing one is a rename).
package media

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/onebox/onebox/internal/inbox"
)

// DefaultMaxSize is the default largest file, ONEBOX_MAX_UPLOAD.
const DefaultMaxSize = 16 << 20

// DefaultURLTTL is how long a signed media URL works: long enough for an
// app left open through a shift, short enough that a leaked link dies.
const DefaultURLTTL = 12 * time.Hour

// Config wires a Store. Dir and Service are required.
type Config struct {
	// Dir holds the files, normally <ONEBOX_DATA>/media.
	Dir     string
	Service *inbox.Service
	// PublicURL is the server's external base URL (ONEBOX_PUBLIC_URL),
	// used for links that providers fetch.
	PublicURL string
	// MaxSize is the largest file accepted, in bytes.
	MaxSize int64
	// URLTTL is how long signed URLs work.
	URLTTL time.Duration
	// Now is replaceable so tests can move time.
	Now    func() time.Time
	Logger *slog.Logger
	// Grace spares files written less than this long ago from cleanup
	// (default DefaultGrace): an upload writes its file before it
	// commits the record, and when the directory is shared, the upload
	// may be running in another process, out of reach of this one's
	// locks. It must exceed the longest time from writing an upload's
	// file to committing its record, plus any clock difference between
	// the machines sharing the directory.
	Grace time.Duration
}

// DefaultGrace is Config.Grace's default.
const DefaultGrace = 10 * time.Minute

// Store saves, finds and cleans up media files.
type Store struct {
	dir       string
	svc       *inbox.Service
	publicURL string
	maxSize   int64
	now       func() time.Time
	log       *slog.Logger
	sign      signer
	// locks serialise, per content, writing a file and recording it
	// against deleting a record and its file, so cleanup never removes
	// bytes that a concurrent upload of the same content has just
	// recorded. Striped: a lock per content would need its own cleanup.
	// They hold within this process only; across processes sharing the
	// directory, grace and the way files are removed do (removeIfUnused).
	locks [64]sync.Mutex
	grace time.Duration
	// beforeRemove, when set, runs after cleanup has found a content
	// unused and before it removes the files; afterPlace, after an
	// upload has put its file in place and before it commits the record.
	// Tests make another process's cleanup or upload land there.
	beforeRemove func(tenant, sha string)
	afterPlace   func()
}

// New opens the media directory and loads the URL-signing secret from
// the store (making it on first start).
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" || cfg.Service == nil {
		return nil, errors.New("media: Dir and Service are required")
	}
	s := &Store{
		dir:       cfg.Dir,
		svc:       cfg.Service,
		publicURL: strings.TrimRight(cfg.PublicURL, "/"),
		maxSize:   cfg.MaxSize,
		now:       cfg.Now,
		log:       cfg.Logger,
		grace:     cfg.Grace,
	}
	if s.grace <= 0 {
		s.grace = DefaultGrace
	}
	if s.maxSize <= 0 {
		s.maxSize = DefaultMaxSize
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ttl := cfg.URLTTL
	if ttl <= 0 {
		ttl = DefaultURLTTL
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("media: create directory: %w", err)
	}
	key, err := cfg.Service.MediaURLKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	s.sign = signer{key: key, ttl: ttl, now: s.now}
	return s, nil
}

// MaxSize is the largest file the store accepts.
func (s *Store) MaxSize() int64 { return s.maxSize }

// TypeError refuses a file whose content is of a type OneBox does not
// store (executables, web pages, archives, ...).
type TypeError struct{ Mime string }

func (e *TypeError) Error() string {
	return "files of type " + e.Mime + " are not accepted: send a picture, a recording, a video, a PDF or an office document"
}

// validTenant keeps tenant ids, which become directory names, to the
// characters ids are made of.
func validTenant(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for _, r := range t {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func (s *Store) path(tenant, sha string) string {
	return filepath.Join(s.dir, tenant, sha[:2], sha)
}

func (s *Store) lock(tenant, sha string) func() {
	h := fnv.New32a()
	h.Write([]byte(tenant + "/" + sha))
	mu := &s.locks[h.Sum32()%uint32(len(s.locks))]
	mu.Lock()
	return mu.Unlock
}

// CleanName makes a client's or provider's file name safe to keep and to
// send back in Content-Disposition: no directories, no control
// characters, at most 200 characters.
func CleanName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > 200 {
		name = string([]rune(name)[:200])
	}
	if name == "." || name == ".." {
		return ""
	}
	return name
}

// Save stores a file for a tenant and returns it as messages carry it,
// with a signed URL. The type is sniffed from the content; claimed (the
// sender's Content-Type, may be empty) is only a hint for what content
// cannot tell. The tenant keeps one copy per content: saving the same
// bytes again returns the first media.
//
// Errors: an *inbox.Error with CodeTooLarge over MaxSize, CodeInvalid for
// an empty file or an unknown tenant; a *TypeError for a type OneBox does
// not store. Channels call it for inbound attachments; the upload endpoint
// for the app's.
func (s *Store) Save(ctx context.Context, tenant string, r io.Reader, name, claimed string) (*inbox.Media, error) {
	rec, err := s.save(ctx, tenant, r, name, claimed)
	if err != nil {
		return nil, err
	}
	m := rec.Media()
	s.SignURLs(tenant, &m)
	return &m, nil
}

func (s *Store) save(ctx context.Context, tenant string, r io.Reader, name, claimed string) (inbox.MediaRecord, error) {
	if !validTenant(tenant) {
		return inbox.MediaRecord{}, inbox.Errorf(inbox.CodeInvalid, "no such tenant")
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "upload-*")
	if err != nil {
		return inbox.MediaRecord{}, fmt.Errorf("media: create temporary file: %w", err)
	}
	keep := false
	defer func() {
		tmp.Close()
		if !keep {
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, s.maxSize+1))
	if err != nil {
		return inbox.MediaRecord{}, fmt.Errorf("media: receive file: %w", err)
	}
	if n > s.maxSize {
		return inbox.MediaRecord{}, inbox.Errorf(inbox.CodeTooLarge, "the file is larger than %d bytes", s.maxSize)
	}
	if n == 0 {
		return inbox.MediaRecord{}, inbox.Errorf(inbox.CodeInvalid, "the file is empty")
	}
	mimeType := Sniff(tmp, n, claimed)
	if !inbox.MediaAllowed(mimeType) {
		return inbox.MediaRecord{}, &TypeError{Mime: mimeType}
	}
	pic, err := inspect(io.NewSectionReader(tmp, 0, n), mimeType)
	if err != nil {
		return inbox.MediaRecord{}, fmt.Errorf("media: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return inbox.MediaRecord{}, fmt.Errorf("media: sync file: %w", err)
	}
	sha := hex.EncodeToString(h.Sum(nil))
	rec := inbox.MediaRecord{SHA256: sha, Mime: mimeType, Size: n, Name: CleanName(name), Width: pic.width, Height: pic.height, Thumbnail: pic.thumbMime}

	unlock := s.lock(tenant, sha)
	defer unlock()
	final := s.path(tenant, sha)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return inbox.MediaRecord{}, fmt.Errorf("media: create directory: %w", err)
	}
	// The bytes and the thumbnail are on disk before the record that
	// points at them is committed; a crash in between leaves files with
	// no record, which the cleanup job removes.
	if pic.thumb != nil {
		if err := writeFileSync(final+".thumb", pic.thumb); err != nil {
			return inbox.MediaRecord{}, fmt.Errorf("media: write thumbnail: %w", err)
		}
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return inbox.MediaRecord{}, fmt.Errorf("media: store file: %w", err)
	}
	keep = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		return inbox.MediaRecord{}, fmt.Errorf("media: %w", err)
	}
	if s.afterPlace != nil {
		s.afterPlace()
	}
	out, _, err := s.svc.AddMedia(ctx, tenant, rec)
	if err != nil {
		return inbox.MediaRecord{}, err
	}
	out.TenantID = tenant
	return out, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".thumb-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// Open returns a tenant's media bytes and what is known of them, for
// channels that upload attachments to a provider. The caller closes the
// reader. A media id of another tenant is not found.
func (s *Store) Open(ctx context.Context, tenant, id string) (io.ReadSeekCloser, inbox.MediaRecord, error) {
	rec, err := s.svc.TenantMedia(ctx, tenant, id)
	if err != nil {
		return nil, inbox.MediaRecord{}, err
	}
	rec.TenantID = tenant
	f, _, _, err := s.OpenFile(rec, false)
	if err != nil {
		return nil, inbox.MediaRecord{}, err
	}
	return f, rec, nil
}

// OpenFile opens a record's bytes, or with thumbnail its preview (the
// image itself when it is small enough to be its own), and tells their
// type and size.
func (s *Store) OpenFile(rec inbox.MediaRecord, thumbnail bool) (*os.File, string, int64, error) {
	if !validTenant(rec.TenantID) || len(rec.SHA256) != 64 {
		return nil, "", 0, fmt.Errorf("media: record %s has no file", rec.ID)
	}
	p, typ := s.path(rec.TenantID, rec.SHA256), rec.Mime
	if thumbnail && rec.Thumbnail != "" {
		p, typ = p+".thumb", rec.Thumbnail
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, "", 0, fmt.Errorf("media: open file of %s: %w", rec.ID, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", 0, fmt.Errorf("media: stat file of %s: %w", rec.ID, err)
	}
	return f, typ, st.Size(), nil
}

// Cleanup removes media that nothing has referred to for
// inbox.MediaRetention, then files left without a record (an upload cut
// short by a crash). It is safe to run while uploads go on.
func (s *Store) Cleanup(ctx context.Context) error {
	cutoff := s.now().Add(-inbox.MediaRetention)
	removed := 0
	for {
		recs, err := s.svc.UnreferencedMedia(ctx, cutoff, 500)
		if err != nil {
			return err
		}
		progress := false
		for _, rec := range recs {
			ok, err := s.drop(ctx, rec, cutoff)
			if err != nil {
				return err
			}
			if ok {
				removed++
				progress = true
			}
		}
		if len(recs) < 500 || !progress {
			break
		}
	}
	if removed > 0 {
		s.log.Info("media: removed unused files", "count", removed)
	}
	// Files carry the real clock's times, whatever clock the store is
	// given.
	return s.sweep(ctx, time.Now().Add(-inbox.MediaRetention))
}

func (s *Store) drop(ctx context.Context, rec inbox.MediaRecord, cutoff time.Time) (bool, error) {
	if rec.SHA256 == "" {
		_, err := s.svc.DropMedia(ctx, rec.TenantID, rec.ID, cutoff)
		return false, err
	}
	unlock := s.lock(rec.TenantID, rec.SHA256)
	defer unlock()
	dropped, err := s.svc.DropMedia(ctx, rec.TenantID, rec.ID, cutoff)
	if err != nil || !dropped {
		return false, err
	}
	return true, s.removeIfUnused(ctx, rec.TenantID, rec.SHA256, s.grace)
}

// removeIfUnused deletes a content's files unless a record still names
// it. The caller holds the content's lock, which keeps out this process's
// uploads only. An upload in another process sharing the directory may
// rename a fresh copy of the same content into place at any moment and
// then commit its record, so a file is never removed where it lies: it is
// first renamed aside, which takes exactly the copy that is there, and
// put back if that copy is younger than the grace period (an upload's)
// or if a record names the content by then. Erasure passes no grace: the
// bytes a customer asked to have erased go at once, and only a record
// committed by then keeps them.
func (s *Store) removeIfUnused(ctx context.Context, tenant, sha string, grace time.Duration) error {
	used, err := s.svc.MediaHasContent(ctx, tenant, sha)
	if err != nil || used || !validTenant(tenant) {
		return err
	}
	if s.beforeRemove != nil {
		s.beforeRemove(tenant, sha)
	}
	p := s.path(tenant, sha)
	var aside [][2]string // {file, where it was moved}
	for _, f := range []string{p, p + ".thumb"} {
		moved, err := setAside(f, grace)
		if err != nil {
			return errors.Join(err, s.putBack(aside))
		}
		if moved != "" {
			aside = append(aside, [2]string{f, moved})
		}
	}
	if len(aside) == 0 {
		return nil
	}
	if used, err := s.svc.MediaHasContent(ctx, tenant, sha); err != nil || used {
		return errors.Join(err, s.putBack(aside))
	}
	for _, a := range aside {
		if err := os.Remove(a[1]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("media: remove file: %w", err)
		}
	}
	return nil
}

// setAside renames f to a name of its own and returns that name, or ""
// when there is no f or f was written within grace (then it stays where
// it is).
func setAside(f string, grace time.Duration) (string, error) {
	var tag [6]byte
	_, _ = rand.Read(tag[:])
	moved := f + asideMark + hex.EncodeToString(tag[:])
	if err := os.Rename(f, moved); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("media: set file aside: %w", err)
	}
	// This is the copy now in hand, whoever wrote it; a rename keeps
	// its modification time. Files carry the real clock's times.
	info, err := os.Stat(moved)
	if err != nil || time.Since(info.ModTime()) < grace {
		return "", errors.Join(err, putBack(f, moved))
	}
	return moved, nil
}

func (s *Store) putBack(aside [][2]string) error {
	var errs []error
	for _, a := range aside {
		errs = append(errs, putBack(a[0], a[1]))
	}
	return errors.Join(errs...)
}

// asideMark is in the name of a file cleanup has set aside for removal.
const asideMark = ".removing-"

// putBack returns a file set aside to its place, unless an upload has
// put the same content there meanwhile (a link never replaces a file).
func putBack(f, moved string) error {
	if err := os.Link(moved, f); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("media: put file back: %w", err)
	}
	if err := os.Remove(moved); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("media: put file back: %w", err)
	}
	return nil
}

// sweep removes files older than cutoff that no record names, and
// temporary files of uploads that never finished.
func (s *Store) sweep(ctx context.Context, cutoff time.Time) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("media: read directory: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.IsDir() {
			continue
		}
		if e.Name() == "tmp" {
			s.sweepTmp(cutoff)
			continue
		}
		if !validTenant(e.Name()) {
			continue
		}
		tenant := e.Name()
		err := filepath.WalkDir(filepath.Join(s.dir, tenant), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if i := strings.Index(d.Name(), asideMark); i > 0 {
				// Set aside by a cleanup that did not finish (or is
				// running in another process): putting it back is
				// always safe, and a later sweep removes it if unused.
				return putBack(filepath.Join(filepath.Dir(p), d.Name()[:i]), p)
			}
			sha := strings.TrimSuffix(d.Name(), ".thumb")
			if len(sha) != 64 {
				return nil
			}
			if _, err := hex.DecodeString(sha); err != nil {
				return nil
			}
			info, err := d.Info()
			if err != nil || info.ModTime().After(cutoff) {
				return nil
			}
			unlock := s.lock(tenant, sha)
			defer unlock()
			return s.removeIfUnused(ctx, tenant, sha, s.grace)
		})
		if err != nil {
			return fmt.Errorf("media: sweep %s: %w", tenant, err)
		}
	}
	return nil
}

func (s *Store) sweepTmp(cutoff time.Time) {
	dir := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
