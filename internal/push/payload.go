package push

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/onebox/onebox/internal/inbox"
)

const (
	// MaxPayload bounds a payload's JSON encoding, in bytes. Push services
	// take at most 4096 bytes per message. Web Push's aes128gcm costs 86
	// bytes of header, a 16-byte tag and a 1-byte delimiter (3993 left);
	// FCM allows 4000 bytes for data and notification together, and the
	// title and body appear in both. Half of FCM's allowance fits both
	// services with room for the field names.
	MaxPayload = 1900
	// previewRunes is a notification's worth of text: more is cut by the
	// phone anyway.
	previewRunes = 280
	// titleRunes keeps a long contact or channel name from crowding out
	// the message.
	titleRunes = 100
	// newMessage stands for a message that has neither text nor a kind
	// with a word of its own.
	newMessage = "New message"
	ellipsis   = "…"
)

// buildPayload makes what a device shows for the latest message m of
// conversation c (after event seq).
func buildPayload(c inbox.Conversation, m inbox.Message, seq uint64, private bool) Payload {
	p := Payload{TenantID: c.TenantID, ConversationID: c.ID, Seq: seq}
	if private {
		// Ids only: the app fetches the conversation and fills in the
		// title and text itself.
		return p
	}
	p.Title = cut(title(c), titleRunes)
	p.Body = preview(m)
	return fit(p, MaxPayload)
}

// title is "<contact> · <channel>", so an agent knows who wrote and where
// to answer.
func title(c inbox.Conversation) string {
	who := strings.TrimSpace(c.Contact.Name)
	if who == "" {
		who = c.Contact.Handle
	}
	where := strings.TrimSpace(c.Channel.Name)
	if where == "" {
		where = channelLabel(c.Channel.Type)
	}
	switch {
	case who == "":
		return where
	case where == "":
		return who
	}
	return who + " · " + where
}

func channelLabel(typ string) string {
	switch typ {
	case inbox.ChannelWhatsApp:
		return "WhatsApp"
	case inbox.ChannelTikTok:
		return "TikTok"
	case inbox.ChannelSMS:
		return "SMS"
	case inbox.ChannelDemo:
		return "Demo"
	}
	return typ
}

// preview is the message's text on one line, cut to previewRunes, or a word
// for what was sent when there is no text.
func preview(m inbox.Message) string {
	text := strings.Join(strings.Fields(m.Text), " ")
	if text == "" {
		switch m.Kind {
		case inbox.KindImage:
			return "Photo"
		case inbox.KindVideo:
			return "Video"
		case inbox.KindAudio:
			return "Voice message"
		case inbox.KindFile:
			return "File"
		case inbox.KindProduct:
			return "Product"
		}
		return newMessage
	}
	return cut(text, previewRunes)
}

// cut shortens s to at most n runes, marking the cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + ellipsis
}

// fit trims the body, then the title, until the payload's JSON fits in
// limit bytes. JSON escaping can make a rune cost up to 6 bytes, so the
// size is measured on the encoding itself.
func fit(p Payload, limit int) Payload {
	for _, field := range []*string{&p.Body, &p.Title} {
		for {
			size := encodedSize(p)
			if size <= limit || *field == "" {
				break
			}
			runes := utf8.RuneCountInString(*field)
			// An escaped rune costs at most 6 bytes: dropping a sixth
			// of the excess in runes never overshoots by much.
			drop := max((size-limit+5)/6, 1)
			*field = cut(*field, runes-drop)
			if *field == ellipsis {
				*field = ""
			}
		}
	}
	return p
}

func encodedSize(p Payload) int {
	b, err := json.Marshal(p)
	if err != nil {
		return 0 // strings and a number always encode
	}
	return len(b)
}
