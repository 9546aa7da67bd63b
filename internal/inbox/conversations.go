package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// sortableTime formats t so that string order is time order.
const sortableTime = "20060102T150405.000000000Z"

// putConversation stores c, keeps the snooze index in step, and announces
// the change.
func (s *Service) putConversation(tx Tx, c Conversation, event string) error {
	if err := s.indexSnooze(tx, c); err != nil {
		return err
	}
	if c.Labels == nil {
		c.Labels = []string{}
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode conversation: %w", err)
	}
	if err := tx.Put(tenantColl(c.TenantID, CollConversations), c.ID, Encoded(raw)); err != nil {
		return err
	}
	// The next message in this conversation reads these bytes back.
	s.decoded.conversations.put(recordKey(c.TenantID, c.ID), raw, c, storedConversation)
	return s.emitEncoded(tx, c.TenantID, event, c, raw)
}

// indexSnooze keeps the due index in step with c. The conversation's
// current due key sits in a small per-tenant index, so a write never has
// to decode the previous conversation just to learn whether it was snoozed.
func (s *Service) indexSnooze(tx Tx, c Conversation) error {
	idx := tenantColl(c.TenantID, CollConvSnooze)
	want := ""
	if c.Status == StatusSnoozed && c.SnoozedUntil != nil {
		want = snoozeKey(c.TenantID, c.ID, *c.SnoozedUntil)
	}
	var have string
	if err := tx.Get(idx, c.ID, &have); err != nil && ErrorCode(err) != CodeNotFound {
		return err
	}
	if have == want {
		return nil
	}
	if have != "" {
		if err := tx.Delete(global(CollSnoozeDue), have); err != nil {
			return err
		}
		if err := tx.Delete(idx, c.ID); err != nil {
			return err
		}
	}
	if want == "" {
		return nil
	}
	if err := tx.Put(global(CollSnoozeDue), want, ""); err != nil {
		return err
	}
	return tx.Put(idx, c.ID, want)
}

func snoozeKey(tenant, conv string, at time.Time) string {
	return at.UTC().Format(sortableTime) + "/" + tenant + "/" + conv
}

// dropSnoozes removes due index entries of a conversation that is gone.
func (s *Service) dropSnoozes(tx Tx, tenant, conv string, now time.Time) error {
	return dropDueEntries(tx, CollSnoozeDue, tenant, conv, now)
}

// dropDueEntries removes, from a global index keyed "<time>/<tenant>/<id>",
// the entries of one record due by until.
func dropDueEntries(tx Tx, coll, tenant, id string, until time.Time) error {
	var keys []string
	end := until.UTC().Format(sortableTime) + "~"
	suffix := "/" + tenant + "/" + id
	err := tx.Scan(global(coll), "", "", false, func(k string, _ []byte) (bool, error) {
		if k > end {
			return false, nil
		}
		if strings.HasSuffix(k, suffix) {
			keys = append(keys, k)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(global(coll), k); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) conversationOf(tx Tx, tenant, id string) (Conversation, error) {
	var raw json.RawMessage
	if err := getIn(tx, tenant, CollConversations, id, "conversation", &raw); err != nil {
		return Conversation{}, err
	}
	c, err := s.decoded.conversations.decode(recordKey(tenant, id), raw, func(c *Conversation) {
		if c.Labels == nil {
			c.Labels = []string{}
		}
	})
	if err != nil {
		return Conversation{}, fmt.Errorf("load conversation: decode: %w", err)
	}
	c.TenantID = tenant
	return c, nil
}

// Filter selects conversations for the inbox list.
type Filter struct {
	Status   string // one status, or empty for all
	Assignee string // "me", "none", an agent id, or empty for all
	Label    string
	Q        string
	Limit    int
	Cursor   string
}

// ListConversations returns a page of the tenant's conversations, newest
// activity first, and the cursor of the next page (nil on the last).
func (s *Service) ListConversations(ctx context.Context, p Principal, f Filter) ([]Conversation, *string, error) {
	if f.Status != "" && !Status(f.Status).Valid() {
		return nil, nil, invalid("status must be one of open, pending, snoozed, resolved")
	}
	after, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, nil, err
	}
	limit := ClampLimit(f.Limit)
	assignee := f.Assignee
	if assignee == "me" {
		assignee = p.Agent.ID
	}
	q := strings.ToLower(strings.TrimSpace(f.Q))
	var all []Conversation
	err = s.store.View(ctx, func(tx Tx) error {
		var textHits map[string]bool
		if q != "" {
			textHits = map[string]bool{}
			if err := scanJSON(tx, tenantColl(p.Tenant.ID, CollMessages), "", func(m Message) bool {
				if !textHits[m.ConversationID] && strings.Contains(strings.ToLower(m.Text), q) {
					textHits[m.ConversationID] = true
				}
				return true
			}); err != nil {
				return err
			}
		}
		return scanJSON(tx, tenantColl(p.Tenant.ID, CollConversations), "", func(c Conversation) bool {
			if matches(c, f, assignee, q, textHits) {
				all = append(all, c)
			}
			return true
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list conversations: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return listPos(all[i]) > listPos(all[j]) })
	start := 0
	if after != "" {
		start = sort.Search(len(all), func(i int) bool { return listPos(all[i]) < after })
	}
	page := all[start:]
	var next *string
	if len(page) > limit {
		page = page[:limit]
		next = encodeCursor(listPos(page[limit-1]))
	}
	for i := range page {
		if page[i].Labels == nil {
			page[i].Labels = []string{}
		}
		page[i].TenantID = p.Tenant.ID
		page[i] = s.presentConversation(page[i])
	}
	return page, next, nil
}

func listPos(c Conversation) string {
	return c.LastActivityAt.UTC().Format(sortableTime) + "|" + c.ID
}

func matches(c Conversation, f Filter, assignee, q string, textHits map[string]bool) bool {
	if f.Status != "" && string(c.Status) != f.Status {
		return false
	}
	switch assignee {
	case "":
	case "none":
		if c.AssigneeID != nil {
			return false
		}
	default:
		if c.AssigneeID == nil || *c.AssigneeID != assignee {
			return false
		}
	}
	if f.Label != "" {
		found := false
		for _, l := range c.Labels {
			if strings.EqualFold(l, f.Label) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if q != "" {
		return strings.Contains(strings.ToLower(c.Contact.Name), q) ||
			strings.Contains(strings.ToLower(c.Contact.Handle), q) || textHits[c.ID]
	}
	return true
}

// GetConversation loads one conversation of the caller's tenant.
func (s *Service) GetConversation(ctx context.Context, p Principal, id string) (Conversation, error) {
	var c Conversation
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		c, err = s.conversationOf(tx, p.Tenant.ID, id)
		return err
	})
	return s.presentConversation(c), err
}

// UpdateConversation applies an agent's change of status, assignee, labels
// or snooze.
func (s *Service) UpdateConversation(ctx context.Context, p Principal, id string, patch Patch) (Conversation, error) {
	var c Conversation
	err := s.store.Update(ctx, func(tx Tx) error {
		var err error
		c, err = s.conversationOf(tx, p.Tenant.ID, id)
		if err != nil {
			return err
		}
		if patch.AssigneeSet && patch.AssigneeID != nil {
			a, err := s.agentOf(tx, p.Tenant.ID, *patch.AssigneeID)
			if err != nil || !a.Active {
				return invalid("assignee_id is not an active agent of this team")
			}
		}
		changed, err := ApplyPatch(&c, patch, s.clock())
		if err != nil || !changed {
			return err
		}
		return s.putConversation(tx, c, EventConversationUpdated)
	})
	return s.presentConversation(c), err
}

// MarkRead clears a conversation's unread count, and on channels that
// show it tells the customer their messages were read.
func (s *Service) MarkRead(ctx context.Context, p Principal, id string) error {
	receipt := false
	err := s.store.Update(ctx, func(tx Tx) error {
		c, err := s.conversationOf(tx, p.Tenant.ID, id)
		if err != nil || c.UnreadCount == 0 {
			return err
		}
		c.UnreadCount = 0
		c.UpdatedAt = s.clock()
		if receipt, err = s.queueReadReceipt(tx, c); err != nil {
			return err
		}
		return s.putConversation(tx, c, EventConversationUpdated)
	})
	if err == nil && receipt {
		s.onOutbound()
	}
	return err
}

// WakeSnoozed reopens every conversation whose snooze ended by now. It is
// called periodically; each wake is its own small transaction.
func (s *Service) WakeSnoozed(ctx context.Context, now time.Time) (int, error) {
	type due struct{ tenant, conv string }
	var list []due
	limit := now.UTC().Format(sortableTime) + "~"
	err := s.store.View(ctx, func(tx Tx) error {
		return tx.Scan(global(CollSnoozeDue), "", "", false, func(k string, _ []byte) (bool, error) {
			if k > limit {
				return false, nil
			}
			parts := strings.SplitN(k, "/", 3)
			if len(parts) == 3 {
				list = append(list, due{parts[1], parts[2]})
			}
			return len(list) < 1000, nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("find snoozed: %w", err)
	}
	woken := 0
	for _, d := range list {
		woke := false // set inside: a store may run the fn more than once
		err := s.store.Update(ctx, func(tx Tx) error {
			woke = false
			c, err := s.conversationOf(tx, d.tenant, d.conv)
			if ErrorCode(err) == CodeNotFound {
				return s.dropSnoozes(tx, d.tenant, d.conv, now)
			}
			if err != nil {
				return err
			}
			if !Wake(&c, now.UTC()) {
				return nil
			}
			woke = true
			return s.putConversation(tx, c, EventConversationUpdated)
		})
		if woke {
			woken++
		}
		if err != nil && ErrorCode(err) != CodeNotFound {
			return woken, fmt.Errorf("wake conversation: %w", err)
		}
	}
	return woken, nil
}
