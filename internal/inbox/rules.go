package inbox

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what callers may store; they keep one tenant from bloating
// everyone's lists and keep payloads within what providers accept.
const (
	MaxTextLen   = 4096
	MaxNameLen   = 200
	MaxLabels    = 20
	MaxLabelLen  = 50
	MaxPageLimit = 200
	DefaultLimit = 50
)

// statusRank orders the delivery states an outbound message moves through.
var statusRank = map[MessageStatus]int{
	MsgPending:   0,
	MsgSent:      1,
	MsgDelivered: 2,
	MsgRead:      3,
}

// AdvanceStatus applies a provider's report to an outbound message's status.
// Status only moves forward, so a late "sent" after "read" changes nothing;
// "failed" is accepted only before the message is known to have arrived.
func AdvanceStatus(cur, next MessageStatus) (MessageStatus, bool) {
	if cur == next {
		return cur, false
	}
	if next == MsgFailed {
		if cur == MsgPending || cur == MsgSent {
			return MsgFailed, true
		}
		return cur, false
	}
	nr, ok := statusRank[next]
	if !ok {
		return cur, false
	}
	if cur == MsgFailed {
		// A provider may confirm delivery of a message we had given up on
		// (a timeout on our side); the customer did get it, so say so.
		if next == MsgPending {
			return cur, false
		}
		return next, true
	}
	cr, ok := statusRank[cur]
	if !ok || nr <= cr {
		return cur, false
	}
	return next, true
}

// OnInbound is what a new customer message does to a conversation: whatever
// the team had decided, the customer is waiting again, so it is open.
func OnInbound(c *Conversation, m Message) {
	c.Status = StatusOpen
	c.SnoozedUntil = nil
	c.UnreadCount++
	at := m.CreatedAt
	c.LastInboundAt = &at
	c.touch(m)
}

// OnOutbound records an agent's message (or note) on the conversation.
func OnOutbound(c *Conversation, m Message) { c.touch(m) }

func (c *Conversation) touch(m Message) {
	mm := m
	c.LastMessage = &mm
	if m.CreatedAt.After(c.LastActivityAt) {
		c.LastActivityAt = m.CreatedAt
	}
	c.UpdatedAt = m.CreatedAt
}

// Wake reopens a snoozed conversation whose time has come. It reports
// whether anything changed.
func Wake(c *Conversation, now time.Time) bool {
	if c.Status != StatusSnoozed || c.SnoozedUntil == nil || c.SnoozedUntil.After(now) {
		return false
	}
	c.Status = StatusOpen
	c.SnoozedUntil = nil
	c.UpdatedAt = now
	return true
}

// Patch is a partial update of a conversation. Nil fields are left alone;
// AssigneeSet distinguishes "unassign" (AssigneeID nil) from "not given".
type Patch struct {
	Status       *Status
	AssigneeSet  bool
	AssigneeID   *string
	Labels       *[]string
	SnoozedSet   bool
	SnoozedUntil *time.Time
}

// ApplyPatch validates p against c and applies it. It reports whether the
// conversation changed. Assignee existence is checked by the caller, which
// can see the agents.
func ApplyPatch(c *Conversation, p Patch, now time.Time) (bool, error) {
	next := *c
	if p.Labels != nil {
		labels, err := NormalizeLabels(*p.Labels)
		if err != nil {
			return false, err
		}
		next.Labels = labels
	}
	if p.AssigneeSet {
		next.AssigneeID = p.AssigneeID
	}
	status := c.Status
	if p.Status != nil {
		if !p.Status.Valid() {
			return false, invalid("status must be one of open, pending, snoozed, resolved")
		}
		status = *p.Status
	}
	if p.SnoozedSet && p.SnoozedUntil == nil && p.Status == nil && status == StatusSnoozed {
		// Clearing the snooze time ends the snooze.
		status = StatusOpen
	}
	if p.SnoozedSet && p.SnoozedUntil != nil {
		if p.Status == nil {
			status = StatusSnoozed
		} else if status != StatusSnoozed {
			return false, invalid("snoozed_until goes with status snoozed")
		}
	}
	switch {
	case status == StatusSnoozed:
		until := next.SnoozedUntil
		if p.SnoozedSet {
			until = p.SnoozedUntil
		}
		if until == nil {
			return false, invalid("snoozing needs snoozed_until")
		}
		if !until.After(now) {
			return false, invalid("snoozed_until must be in the future")
		}
		u := until.UTC()
		next.SnoozedUntil = &u
	default:
		next.SnoozedUntil = nil
	}
	next.Status = status
	if conversationEqual(*c, next) {
		return false, nil
	}
	next.UpdatedAt = now
	*c = next
	return true, nil
}

func conversationEqual(a, b Conversation) bool {
	if a.Status != b.Status || !ptrEqual(a.AssigneeID, b.AssigneeID) || len(a.Labels) != len(b.Labels) {
		return false
	}
	for i := range a.Labels {
		if a.Labels[i] != b.Labels[i] {
			return false
		}
	}
	switch {
	case a.SnoozedUntil == nil && b.SnoozedUntil == nil:
		return true
	case a.SnoozedUntil == nil || b.SnoozedUntil == nil:
		return false
	}
	return a.SnoozedUntil.Equal(*b.SnoozedUntil)
}

func ptrEqual(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// NormalizeLabels trims, drops duplicates (case-insensitively, keeping the
// first spelling) and checks the limits, so filters match what people typed.
func NormalizeLabels(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, l := range in {
		l = strings.TrimSpace(l)
		if l == "" {
			return nil, invalid("labels must not be empty")
		}
		if utf8.RuneCountInString(l) > MaxLabelLen {
			return nil, invalid("a label is at most %d characters", MaxLabelLen)
		}
		k := strings.ToLower(l)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, l)
	}
	if len(out) > MaxLabels {
		return nil, invalid("at most %d labels", MaxLabels)
	}
	return out, nil
}

// ClampLimit applies the contract's paging defaults.
func ClampLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxPageLimit:
		return MaxPageLimit
	}
	return n
}

// CleanName trims a display name and checks its length.
func CleanName(field, s string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" && required {
		return "", invalid("%s is required", field)
	}
	if utf8.RuneCountInString(s) > MaxNameLen {
		return "", invalid("%s is at most %d characters", field, MaxNameLen)
	}
	return s, nil
}
