package inbox

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ReplyWindow is how long after a customer's last message a channel lets
// the business write freely; zero means no limit. WhatsApp's customer-care
// window is 24 hours and TikTok's 48; outside them a free-form message is
// refused by the provider, so OneBox refuses it first, with a reason.
func ReplyWindow(channelType string) time.Duration {
	switch channelType {
	case ChannelWhatsApp:
		return 24 * time.Hour
	case ChannelTikTok:
		return 48 * time.Hour
	}
	return 0
}

// MaxReplyText is the longest reply text a channel type carries, in
// characters.
func MaxReplyText(channelType string) int {
	if channelType == ChannelTikTok {
		return 950
	}
	return MaxTextLen
}

// ProviderName is how a channel type is named to people.
func ProviderName(channelType string) string {
	switch channelType {
	case ChannelWhatsApp:
		return "WhatsApp"
	case ChannelTikTok:
		return "TikTok"
	case ChannelSMS:
		return "SMS"
	}
	return channelType
}

// WindowCheck says whether a free-form reply may go out on a channel type
// now, given when the customer last wrote; the error (code window_closed)
// explains why not.
func WindowCheck(channelType string, lastInbound *time.Time, now time.Time) error {
	w := ReplyWindow(channelType)
	if w == 0 {
		return nil
	}
	name := ProviderName(channelType)
	hours := int(w / time.Hour)
	if lastInbound == nil {
		return Errorf(CodeWindowClosed,
			"%s allows free-form replies only within %d hours of the customer's last message, and this customer has not written yet",
			name, hours)
	}
	if since := now.Sub(*lastInbound); since > w {
		return Errorf(CodeWindowClosed,
			"%s allows free-form replies only within %d hours of the customer's last message; they last wrote %s ago, so they must write again before a reply can be sent",
			name, hours, roughDuration(since))
	}
	return nil
}

// roughDuration renders a wait the way a person would say it.
func roughDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	}
	return fmt.Sprintf("%d minutes", int(d/time.Minute))
}

// checkReply applies the conversation's channel rules to a reply before it
// is accepted: its reply window and its text limit.
func checkReply(c Conversation, text string, now time.Time) error {
	if n := MaxReplyText(c.Channel.Type); utf8.RuneCountInString(text) > n {
		return invalid("%s messages are at most %d characters", ProviderName(c.Channel.Type), n)
	}
	return WindowCheck(c.Channel.Type, c.LastInboundAt, now)
}

// queueReadReceipt asks the outbox to tell the provider that the team has
// read the conversation, for channel types that show it to customers. The
// receipt names the newest inbound message; providers take it as "read up
// to here". It goes through the outbox so it survives a restart and is
// retried like a reply.
func (s *Service) queueReadReceipt(tx Tx, c Conversation) (bool, error) {
	if !s.readReceipts[c.Channel.Type] {
		return false, nil
	}
	var target *Message
	scanned := 0
	err := tx.Scan(tenantColl(c.TenantID, CollMessages), c.ID+"/", "", true, func(_ string, raw []byte) (bool, error) {
		m, err := decode[Message](raw)
		if err != nil {
			return false, err
		}
		scanned++
		if m.Direction == DirectionIn && m.ExternalID != "" {
			target = &m
			return false, nil
		}
		return scanned < 50, nil
	})
	if err != nil || target == nil {
		return false, err
	}
	now := s.clock()
	item := OutboxItem{
		TenantID: c.TenantID, MessageID: target.ID, ConversationID: c.ID, ChannelID: c.Channel.ID,
		NextAt: now, QueuedAt: now, Kind: OutboxRead,
	}
	var cur OutboxItem
	switch err := tx.Get(global(CollOutbox), item.key(), &cur); {
	case err == nil:
		return false, nil // already queued
	case !errors.Is(err, ErrNotFound):
		return false, err
	}
	return true, tx.Put(global(CollOutbox), item.key(), item)
}
