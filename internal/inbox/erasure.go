package inbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Erasure collections. A job record names only ids, never what was
// erased, so keeping it (for the status page and for idempotence) keeps no
// personal data.
const (
	CollErasures       = "erasures"        // global: confirmation code -> ErasureJob
	CollErasurePending = "erasure_pending" // global: confirmation code -> "" until the job completes
	CollContactErasure = "contact_erasure" // per tenant: contact id -> confirmation code
)

// Erasure statuses, as the status page shows them.
const (
	ErasureReceived   = "received"
	ErasureInProgress = "in_progress"
	ErasureCompleted  = "completed"
)

// Erasure phases, in order. A job resumes at its phase after a restart;
// every phase can be run again without harm.
const (
	phaseData    = "data"    // contacts, conversations, messages and their indexes
	phaseEvents  = "events"  // the event log's copies become tombstones
	PhaseMedia   = "media"   // the files of released media (by the media store)
	PhaseCompact = "compact" // the store file is rewritten without freed pages
	PhaseDone    = "done"
)

// EventTombstone replaces an event whose content was erased. It keeps its
// seq, so the log stays gapless, and carries no data.
const EventTombstone = "tombstone"

// erasureBatch bounds the messages removed, and events rewritten ten times
// that, per transaction, so an erasure never holds up live traffic for long.
const erasureBatch = 200

// ErasureJob is one request to erase contacts, from an admin or a provider.
type ErasureJob struct {
	Code        string     `json:"code"`
	TenantID    string     `json:"tenant_id"`
	Source      string     `json:"source"` // admin, meta
	ContactIDs  []string   `json:"contact_ids"`
	Status      string     `json:"status"`
	Phase       string     `json:"phase"`
	RequestedAt time.Time  `json:"requested_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`

	// Progress, so a restarted job goes on where it stopped.
	Next          int      `json:"next"`
	Conversations []string `json:"conversations,omitempty"`
	Media         []string `json:"media,omitempty"`
	EventFrom     uint64   `json:"event_from,omitempty"`
	Messages      int      `json:"messages"`
}

// ContactErased is the data of a contact.erased event: apps drop the
// contact and these conversations, with their messages, from their copies.
type ContactErased struct {
	ContactID       string   `json:"contact_id"`
	ConversationIDs []string `json:"conversation_ids"`
}

// SetOnErasure attaches the erasure runner's wake-up: erasure requests are
// committed here and carried out by a job outside the store.
func (s *Service) SetOnErasure(f func()) { s.onErasure = f }

func (s *Service) erasureAdded() {
	if s.onErasure != nil {
		s.onErasure()
	}
}

// ErasureStatusURL is where the person who asked can follow a request.
func (s *Service) ErasureStatusURL(code string) string {
	return strings.TrimRight(s.publicURL, "/") + "/privacy/deletion/" + code
}

func newConfirmationCode() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails on supported platforms (crypto/rand docs)
	return hex.EncodeToString(b)
}

// EraseContact starts erasing one contact of the tenant (admin). Asking
// again for a contact being or already erased returns the same job.
func (s *Service) EraseContact(ctx context.Context, p Principal, contactID string) (ErasureJob, error) {
	if err := p.requireAdmin(); err != nil {
		return ErasureJob{}, err
	}
	var job ErasureJob
	err := s.store.Update(ctx, func(tx Tx) error {
		job = ErasureJob{} // a store may run the fn more than once
		var code string
		if err := tx.Get(tenantColl(p.Tenant.ID, CollContactErasure), contactID, &code); err == nil {
			return tx.Get(global(CollErasures), code, &job)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		var c Contact
		if err := getIn(tx, p.Tenant.ID, CollContacts, contactID, "contact", &c); err != nil {
			return err
		}
		var err error
		job, err = s.newErasure(tx, p.Tenant.ID, "admin", []string{contactID})
		if err != nil {
			return err
		}
		return s.audit(tx, p, AuditErasureRequested, "contact", contactID)
	})
	if err != nil {
		return ErasureJob{}, err
	}
	s.erasureAdded()
	return job, nil
}

// RequestErasure starts erasing the contacts of channelID whose handle is
// handle, on behalf of a provider's deletion request. A job is made even
// when no contact matches: its status then tells the person that nothing
// was held.
func (s *Service) RequestErasure(ctx context.Context, ch Channel, handle, source, ip string) (ErasureJob, error) {
	var job ErasureJob
	err := s.store.Update(ctx, func(tx Tx) error {
		job = ErasureJob{} // a store may run the fn more than once
		var ids []string
		var id string
		err := tx.Get(tenantColl(ch.TenantID, CollContactHandle), ch.ID+"/"+handle, &id)
		if err == nil {
			ids = append(ids, id)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		job, err = s.newErasure(tx, ch.TenantID, source, ids)
		if err != nil {
			return err
		}
		return s.auditAs(tx, ch.TenantID, AuditActor{Type: "provider", ID: ch.ID, Name: source}, ip,
			AuditErasureRequested, AuditTarget{Type: "channel", ID: ch.ID}, map[string]int{"contacts": len(ids)})
	})
	if err != nil {
		return ErasureJob{}, fmt.Errorf("request erasure: %w", err)
	}
	s.erasureAdded()
	return job, nil
}

func (s *Service) newErasure(tx Tx, tenant, source string, contacts []string) (ErasureJob, error) {
	job := ErasureJob{
		Code: newConfirmationCode(), TenantID: tenant, Source: source, ContactIDs: contacts,
		Status: ErasureReceived, Phase: phaseData, RequestedAt: s.clock(),
	}
	if contacts == nil {
		job.ContactIDs = []string{}
	}
	for _, id := range contacts {
		if err := tx.Put(tenantColl(tenant, CollContactErasure), id, job.Code); err != nil {
			return ErasureJob{}, err
		}
	}
	if err := tx.Put(global(CollErasurePending), job.Code, ""); err != nil {
		return ErasureJob{}, err
	}
	return job, tx.Put(global(CollErasures), job.Code, job)
}

// Erasure reads a job by its confirmation code; unknown codes are not
// found.
func (s *Service) Erasure(ctx context.Context, code string) (ErasureJob, error) {
	var job ErasureJob
	err := s.store.View(ctx, func(tx Tx) error { return tx.Get(global(CollErasures), code, &job) })
	if errors.Is(err, ErrNotFound) || code == "" {
		return ErasureJob{}, notFound("deletion request")
	}
	if err != nil {
		return ErasureJob{}, fmt.Errorf("read erasure: %w", err)
	}
	return job, nil
}

// PendingErasures lists the jobs not completed yet, to resume at start.
func (s *Service) PendingErasures(ctx context.Context) ([]string, error) {
	var codes []string
	err := s.store.View(ctx, func(tx Tx) error {
		return tx.Scan(global(CollErasurePending), "", "", false, func(k string, _ []byte) (bool, error) {
			codes = append(codes, k)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pending erasures: %w", err)
	}
	return codes, nil
}

// EventRewriter is what erasure needs of a store's Tx to turn logged
// events into tombstones (internal/bolt's Tx has it).
type EventRewriter interface {
	RewriteEvents(tenant string, from uint64, limit int, fn func(e *Event) bool) (uint64, error)
}

// EraseStep does the next small piece of a job's store work and returns
// the job as it is afterwards. Once the job's phase is PhaseMedia the
// caller removes the job's media files (media store), then calls
// ErasureMediaDone; at PhaseCompact it rewrites the store file, then calls
// CompleteErasure.
func (s *Service) EraseStep(ctx context.Context, code string) (ErasureJob, error) {
	var job ErasureJob
	err := s.store.Update(ctx, func(tx Tx) error {
		job = ErasureJob{} // a store may run the fn more than once
		if err := tx.Get(global(CollErasures), code, &job); err != nil {
			return err
		}
		switch job.Phase {
		case phaseData:
			job.Status = ErasureInProgress
			if job.Next >= len(job.ContactIDs) {
				job.Phase, job.EventFrom = phaseEvents, 1
				break
			}
			if err := s.eraseContactStep(tx, &job); err != nil {
				return err
			}
		case phaseEvents:
			rw, ok := tx.(EventRewriter)
			if !ok {
				return errors.New("the store cannot rewrite its event log")
			}
			next, err := rw.RewriteEvents(job.TenantID, job.EventFrom, erasureBatch*10, job.tombstone)
			if err != nil {
				return err
			}
			job.EventFrom = next
			if next == 0 {
				job.Phase = PhaseMedia
			}
		}
		return tx.Put(global(CollErasures), code, job)
	})
	// What this process remembers of decoded records goes too: the cache
	// is only a shortcut, and an erased customer's details must not stay
	// in memory. (Every entry, not the contact's: cheap, and erasure is rare.)
	s.decoded.clear()
	if err != nil {
		return ErasureJob{}, fmt.Errorf("erase (%s): %w", code, err)
	}
	return job, nil
}

// tombstone empties an event that mentions an erased contact or
// conversation (messages name their conversation). The ids are random
// UUIDs, so finding one in an event's JSON means the event is about it.
func (job *ErasureJob) tombstone(e *Event) bool {
	if e.Type == EventContactErased || e.Type == EventTombstone {
		return false
	}
	for _, ids := range [][]string{job.ContactIDs, job.Conversations} {
		for _, id := range ids {
			if id != "" && bytes.Contains(e.Data, []byte(id)) {
				e.Type, e.Data = EventTombstone, json.RawMessage(`{}`)
				return true
			}
		}
	}
	return false
}

// eraseContactStep removes up to erasureBatch messages of the job's
// current contact; when none are left it removes the conversation and the
// contact too, logs contact.erased and moves to the next contact.
func (s *Service) eraseContactStep(tx Tx, job *ErasureJob) error {
	tenant, cid := job.TenantID, job.ContactIDs[job.Next]
	var convID string
	err := tx.Get(tenantColl(tenant, CollContactConv), cid, &convID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if convID != "" {
		var conv Conversation
		if err := getIn(tx, tenant, CollConversations, convID, "conversation", &conv); err != nil && ErrorCode(err) != CodeNotFound {
			return err
		}
		conv.TenantID, conv.ID = tenant, convID
		if !slices.Contains(job.Conversations, convID) {
			job.Conversations = append(job.Conversations, convID)
		}
		n, err := s.deleteMessages(tx, conv, "", erasureBatch, func(m Message) {
			if m.Media != nil && m.Media.ID != "" && !slices.Contains(job.Media, m.Media.ID) {
				job.Media = append(job.Media, m.Media.ID)
			}
		})
		if err != nil {
			return err
		}
		job.Messages += n
		if n == erasureBatch {
			return nil // more next step
		}
		if err := deleteConversation(tx, conv); err != nil {
			return err
		}
		if err := tx.Delete(tenantColl(tenant, CollContactConv), cid); err != nil {
			return err
		}
	}
	var c Contact
	if err := getIn(tx, tenant, CollContacts, cid, "contact", &c); err == nil {
		var owner string
		hk := c.ChannelID + "/" + c.Handle
		if err := tx.Get(tenantColl(tenant, CollContactHandle), hk, &owner); err == nil && owner == cid {
			if err := tx.Delete(tenantColl(tenant, CollContactHandle), hk); err != nil {
				return err
			}
		}
		if err := tx.Delete(tenantColl(tenant, CollContacts), cid); err != nil {
			return err
		}
	} else if ErrorCode(err) != CodeNotFound {
		return err
	}
	var convs []string
	if convID != "" {
		convs = []string{convID}
	} else {
		convs = []string{}
	}
	raw, err := json.Marshal(ContactErased{ContactID: cid, ConversationIDs: convs})
	if err != nil {
		return err
	}
	if err := tx.Append(tenant, &Event{Type: EventContactErased, At: s.clock(), Data: raw}); err != nil {
		return err
	}
	job.Next++
	return nil
}

// deleteMessages removes up to limit messages of conv (those created
// before `before`, when it is not empty, a sortable time) with everything
// that indexes them, releasing their media. It reports how many it
// removed; fewer than limit means none are left.
func (s *Service) deleteMessages(tx Tx, conv Conversation, before string, limit int, removed func(Message)) (int, error) {
	tenant := conv.TenantID
	var msgs []Message
	err := tx.Scan(tenantColl(tenant, CollMessages), conv.ID+"/", "", false, func(_ string, raw []byte) (bool, error) {
		var m Message
		if err := json.Unmarshal(raw, &m); err != nil {
			return false, fmt.Errorf("decode message: %w", err)
		}
		if before != "" && m.CreatedAt.UTC().Format(sortableTime) >= before {
			return true, nil
		}
		msgs = append(msgs, m)
		return len(msgs) < limit, nil
	})
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if err := tx.Delete(tenantColl(tenant, CollMessages), conv.ID+"/"+m.ID); err != nil {
			return 0, err
		}
		if err := tx.Delete(tenantColl(tenant, CollMessageIndex), m.ID); err != nil {
			return 0, err
		}
		if m.ClientID != "" {
			var owner string
			if err := tx.Get(tenantColl(tenant, CollClientIDs), m.ClientID, &owner); err == nil && owner == m.ID {
				if err := tx.Delete(tenantColl(tenant, CollClientIDs), m.ClientID); err != nil {
					return 0, err
				}
			}
		}
		if m.ExternalID != "" && conv.Channel.ID != "" {
			if err := tx.Delete(tenantColl(tenant, CollExternalIDs), conv.Channel.ID+"/"+m.ExternalID); err != nil {
				return 0, err
			}
		}
		if err := tx.Delete(global(CollOutbox), tenant+"/"+m.ID); err != nil {
			return 0, err
		}
		if m.Media != nil && m.Media.ID != "" {
			if err := s.releaseMedia(tx, tenant, m.Media.ID, messageHolder(m.ID)); err != nil {
				return 0, err
			}
		}
		if m.Product != nil && m.Product.ImageMediaID != "" {
			if err := s.releaseMedia(tx, tenant, m.Product.ImageMediaID, messageHolder(m.ID)); err != nil {
				return 0, err
			}
		}
		removed(m)
	}
	return len(msgs), nil
}

// deleteConversation removes a conversation record and its snooze
// entries.
func deleteConversation(tx Tx, conv Conversation) error {
	idx := tenantColl(conv.TenantID, CollConvSnooze)
	var due string
	if err := tx.Get(idx, conv.ID, &due); err == nil {
		if err := tx.Delete(global(CollSnoozeDue), due); err != nil {
			return err
		}
		if err := tx.Delete(idx, conv.ID); err != nil {
			return err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return tx.Delete(tenantColl(conv.TenantID, CollConversations), conv.ID)
}

// ErasureMediaDone records that the job's media files are gone.
func (s *Service) ErasureMediaDone(ctx context.Context, code string) error {
	return s.setErasurePhase(ctx, code, PhaseMedia, PhaseCompact, nil)
}

// CompleteErasure marks a job completed once the store file no longer
// holds the erased data.
func (s *Service) CompleteErasure(ctx context.Context, code string) error {
	return s.setErasurePhase(ctx, code, PhaseCompact, PhaseDone, func(tx Tx, job *ErasureJob) error {
		now := s.clock()
		job.Status, job.CompletedAt = ErasureCompleted, &now
		if err := tx.Delete(global(CollErasurePending), code); err != nil {
			return err
		}
		return s.auditAs(tx, job.TenantID, AuditActor{Type: "system", ID: "erasure", Name: "OneBox"}, "",
			AuditErasureCompleted, AuditTarget{Type: "erasure", ID: code},
			map[string]int{"contacts": len(job.ContactIDs), "conversations": len(job.Conversations), "messages": job.Messages, "media": len(job.Media)})
	})
}

func (s *Service) setErasurePhase(ctx context.Context, code, from, to string, also func(Tx, *ErasureJob) error) error {
	err := s.store.Update(ctx, func(tx Tx) error {
		var job ErasureJob
		if err := tx.Get(global(CollErasures), code, &job); err != nil {
			return err
		}
		if job.Phase != from {
			return nil
		}
		job.Phase = to
		if also != nil {
			if err := also(tx, &job); err != nil {
				return err
			}
		}
		return tx.Put(global(CollErasures), code, job)
	})
	if err != nil {
		return fmt.Errorf("erasure %s: %w", code, err)
	}
	return nil
}
