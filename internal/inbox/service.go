package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
)

// Config wires a Service. Store is required; the rest have defaults.
type Config struct {
	Store Store
	Live  Live
	// Now and NewID are replaceable so tests can pin time and ids.
	Now   func() time.Time
	NewID func() string
	// SessionTTL is how long a sign-in lasts.
	SessionTTL time.Duration
	// PublicURL is the external base URL used in webhook URLs.
	PublicURL string
	// OnOutbound is called after an outbound message is committed so the
	// outbox worker can pick it up without waiting for its next poll.
	OnOutbound func()
	Logger     *slog.Logger
	// ReadReceipts lists the channel types whose provider is told when an
	// agent reads a conversation (see queueReadReceipt).
	ReadReceipts []string
}

// Service applies OneBox's rules on top of a Store. Every method that
// changes data does so in one Store.Update, writing the change and its
// events together.
type Service struct {
	store      Store
	live       Live
	now        func() time.Time
	newID      func() string
	sessionTTL time.Duration
	publicURL  string
	onOutbound func()
	log        *slog.Logger

	readReceipts map[string]bool
	// mediaURLs signs media URLs when objects are shown (media.go).
	mediaURLs MediaURLs
	// onErasure wakes the erasure runner (erasure.go).
	onErasure func()
	// secrets seals channel configs at rest (secrets.go); nil stores them
	// as they are.
	secrets *secretBox
	// decoded spares hot records a JSON decode per message (decoded.go).
	decoded decodedRecords
}

// NewService checks cfg and fills in defaults.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("inbox: a store is required")
	}
	s := &Service{
		decoded:    newDecodedRecords(),
		store:      cfg.Store,
		live:       cfg.Live,
		now:        cfg.Now,
		newID:      cfg.NewID,
		sessionTTL: cfg.SessionTTL,
		publicURL:  cfg.PublicURL,
		onOutbound: cfg.OnOutbound,
		log:        cfg.Logger,
	}
	if s.live == nil {
		s.live = NoLive{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = newUUIDv7
	}
	if s.sessionTTL <= 0 {
		s.sessionTTL = 30 * 24 * time.Hour
	}
	if s.onOutbound == nil {
		s.onOutbound = func() {}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.readReceipts = make(map[string]bool, len(cfg.ReadReceipts))
	for _, t := range cfg.ReadReceipts {
		s.readReceipts[t] = true
	}
	return s, nil
}

// SetLive attaches the live stream after construction: the hub needs the
// service to authenticate sockets and the service needs the hub to cut them.
func (s *Service) SetLive(l Live) { s.live = l }

// SetOnOutbound attaches the outbox wake-up after construction.
func (s *Service) SetOnOutbound(f func()) { s.onOutbound = f }

// Store exposes the store for components (outbox, channels) that read it.
func (s *Service) Store() Store { return s.store }

func newUUIDv7() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only if the system's random source does; nothing
		// sensible can continue without it.
		panic(fmt.Sprintf("inbox: generating id: %v", err))
	}
	return id.String()
}

func (s *Service) clock() time.Time { return s.now().UTC() }

func global(name string) Collection { return Collection{Name: name} }

func tenantColl(tenant, name string) Collection { return Collection{Tenant: tenant, Name: name} }

// emit appends an event carrying the whole object after the change.
func (s *Service) emit(tx Tx, tenant, typ string, data any) error {
	raw, err := json.Marshal(s.present(tenant, data))
	if err != nil {
		return fmt.Errorf("encode %s event: %w", typ, err)
	}
	return tx.Append(tenant, &Event{Type: typ, At: s.clock(), Data: raw})
}

// updateRerunnable is Store.Update for units of work that may run more than
// once (see Speculator); stores that cannot speculate just run them.
func (s *Service) updateRerunnable(ctx context.Context, fn func(Tx) error) error {
	if sp, ok := s.store.(Speculator); ok {
		return sp.Speculate(ctx, fn)
	}
	return s.store.Update(ctx, fn)
}

// emitEncoded is emit for data whose stored encoding is at hand: when the
// apps' view of it is the stored record (no attachment URLs to sign), the
// same bytes serve the event, sparing the commit path a second encoding.
func (s *Service) emitEncoded(tx Tx, tenant, typ string, data any, stored json.RawMessage) error {
	if stored == nil || needsPresenting(data) && s.mediaURLs != nil {
		return s.emit(tx, tenant, typ, data)
	}
	return tx.Append(tenant, &Event{Type: typ, At: s.clock(), Data: stored})
}

// getIn loads a tenant record, reporting a missing one as "<what> not found".
func getIn(tx Tx, tenant, coll, id, what string, v any) error {
	if id == "" {
		return notFound(what)
	}
	if err := tx.Get(tenantColl(tenant, coll), id, v); err != nil {
		if errors.Is(err, ErrNotFound) {
			return notFound(what)
		}
		return fmt.Errorf("load %s: %w", what, err)
	}
	return nil
}

// Events reads the tenant's log after since. Reset tells the caller its
// position is unknown to this log (trimmed, or from another store) and it
// must refetch its lists.
func (s *Service) Events(ctx context.Context, p Principal, since uint64, limit int) ([]Event, uint64, bool, error) {
	limit = ClampLimit(limit)
	events, head, err := s.store.Events(ctx, p.Tenant.ID, since, limit)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read events: %w", err)
	}
	if since > head {
		return nil, head, true, nil
	}
	oldest, err := s.store.Oldest(ctx, p.Tenant.ID)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read log start: %w", err)
	}
	if since+1 < oldest {
		return nil, head, true, nil
	}
	return events, head, false, nil
}
