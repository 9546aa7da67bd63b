package whatsapp

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// Notification is what one webhook delivery carries for one phone number.
type Notification struct {
	Messages []Inbound
	Statuses []inbox.StatusReport
	// Foreign counts changes about other phone numbers, which this channel
	// does not own (one Meta app may serve several numbers).
	Foreign int
}

// Inbound is a customer message, with the attachment still to fetch.
type Inbound struct {
	inbox.Inbound
	// MediaID is the Graph API id of the attachment; empty when none.
	MediaID  string
	MediaFor string // the WhatsApp type it came as: image, audio, ...
	Mime     string
	Filename string
}

// envelope is the webhook body: every entry and change is looked at.
type envelope struct {
	Object string  `json:"object"`
	Entry  []entry `json:"entry"`
}

type entry struct {
	ID      string   `json:"id"`
	Changes []change `json:"changes"`
}

type change struct {
	Field string      `json:"field"`
	Value changeValue `json:"value"`
}

type changeValue struct {
	MessagingProduct string `json:"messaging_product"`
	Metadata         struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []struct {
		Profile struct {
			Name string `json:"name"`
		} `json:"profile"`
		WaID string `json:"wa_id"`
	} `json:"contacts"`
	Messages []message `json:"messages"`
	Statuses []status  `json:"statuses"`
}

type flex = channel.Flex

type media struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
	Voice    bool   `json:"voice"`
	Animated bool   `json:"animated"`
}

type location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name"`
	Address   string  `json:"address"`
	URL       string  `json:"url"`
}

type contactCard struct {
	Name struct {
		FormattedName string `json:"formatted_name"`
		FirstName     string `json:"first_name"`
		LastName      string `json:"last_name"`
	} `json:"name"`
	Phones []struct {
		Phone string `json:"phone"`
		WaID  string `json:"wa_id"`
		Type  string `json:"type"`
	} `json:"phones"`
	Emails []struct {
		Email string `json:"email"`
	} `json:"emails"`
	Org struct {
		Company string `json:"company"`
	} `json:"org"`
}

type apiError struct {
	Code      flex   `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

type message struct {
	From      string `json:"from"`
	ID        string `json:"id"`
	Timestamp flex   `json:"timestamp"`
	Type      string `json:"type"`
	Text      *struct {
		Body string `json:"body"`
	} `json:"text"`
	Image    *media        `json:"image"`
	Audio    *media        `json:"audio"`
	Video    *media        `json:"video"`
	Document *media        `json:"document"`
	Sticker  *media        `json:"sticker"`
	Location *location     `json:"location"`
	Contacts []contactCard `json:"contacts"`
	Button   *struct {
		Text    string `json:"text"`
		Payload string `json:"payload"`
	} `json:"button"`
	Interactive *struct {
		Type        string `json:"type"`
		ButtonReply *struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"button_reply"`
		ListReply *struct {
			ID          string `json:"id"`
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"list_reply"`
		NfmReply *struct {
			Name string `json:"name"`
			Body string `json:"body"`
		} `json:"nfm_reply"`
	} `json:"interactive"`
	Reaction *struct {
		MessageID string `json:"message_id"`
		Emoji     string `json:"emoji"`
	} `json:"reaction"`
	Order *struct {
		CatalogID    string `json:"catalog_id"`
		Text         string `json:"text"`
		ProductItems []struct {
			ProductRetailerID string  `json:"product_retailer_id"`
			Quantity          flex    `json:"quantity"`
			ItemPrice         float64 `json:"item_price"`
			Currency          string  `json:"currency"`
		} `json:"product_items"`
	} `json:"order"`
	System *struct {
		Body string `json:"body"`
		Type string `json:"type"`
	} `json:"system"`
	Errors []apiError `json:"errors"`
}

type status struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Timestamp   flex       `json:"timestamp"`
	RecipientID string     `json:"recipient_id"`
	Errors      []apiError `json:"errors"`
}

// Object is the envelope's "object" for WhatsApp Business accounts.
const Object = "whatsapp_business_account"

// Parse reads a webhook body for the channel whose phone number id is
// given. The body must be a JSON envelope; inside it, changes about other
// numbers are counted and left out, unknown change fields and status
// values are ignored, and every message becomes an Inbound, with a
// placeholder text for types OneBox cannot show, so none is dropped.
func Parse(body []byte, phoneNumberID string) (Notification, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Notification{}, channel.Malformed("the body is not a WhatsApp webhook: %v", err)
	}
	var n Notification
	if env.Object != Object {
		return n, nil // another product's webhook (Messenger, Instagram): nothing of ours
	}
	for _, e := range env.Entry {
		for _, c := range e.Changes {
			if c.Field != "messages" {
				continue
			}
			v := c.Value
			if v.Metadata.PhoneNumberID != phoneNumberID {
				n.Foreign++
				continue
			}
			names := make(map[string]string, len(v.Contacts))
			for _, ct := range v.Contacts {
				names[ct.WaID] = ct.Profile.Name
			}
			for _, m := range v.Messages {
				if m.From == "" || m.ID == "" {
					return Notification{}, channel.Malformed("a WhatsApp message without from or id")
				}
				in := inboundOf(m)
				in.ContactName = names[m.From]
				n.Messages = append(n.Messages, in)
			}
			for _, s := range v.Statuses {
				if r, ok := statusOf(s); ok {
					n.Statuses = append(n.Statuses, r)
				}
			}
		}
	}
	return n, nil
}

// statusOf turns a status object into a report; ok is false for values
// that say nothing about delivery (such as "deleted").
func statusOf(s status) (inbox.StatusReport, bool) {
	r := inbox.StatusReport{ExternalID: s.ID}
	switch s.Status {
	case "sent":
		r.Status = inbox.MsgSent
	case "delivered":
		r.Status = inbox.MsgDelivered
	case "read":
		r.Status = inbox.MsgRead
	case "failed":
		r.Status = inbox.MsgFailed
		r.Error = errorOf(s.Errors)
	default:
		return r, false
	}
	return r, s.ID != ""
}

// errorOf keeps the first of Meta's errors: its code and title, and the
// details when they add something.
func errorOf(errs []apiError) *inbox.MessageError {
	if len(errs) == 0 {
		return &inbox.MessageError{Code: "failed", Message: "WhatsApp could not deliver the message"}
	}
	e := errs[0]
	msg := e.Title
	if msg == "" {
		msg = e.Message
	}
	if d := e.ErrorData.Details; d != "" && d != msg {
		if msg != "" {
			msg += ": "
		}
		msg += d
	}
	code := string(e.Code)
	if code == "" {
		code = "failed"
	}
	if msg == "" {
		msg = "WhatsApp could not deliver the message"
	}
	return &inbox.MessageError{Code: code, Message: msg}
}

// inboundOf gives each message type a kind and a text an agent can read.
func inboundOf(m message) Inbound {
	in := Inbound{Inbound: inbox.Inbound{ExternalID: m.ID, ContactHandle: m.From, Kind: inbox.KindText, At: unixTime(m.Timestamp)}}
	withMedia := func(kind string, md *media, text string) {
		in.Kind = kind
		in.Text = text
		if md != nil {
			in.MediaID, in.Mime, in.Filename = md.ID, md.MimeType, md.Filename
		}
		in.MediaFor = m.Type
	}
	switch m.Type {
	case "text":
		if m.Text != nil {
			in.Text = m.Text.Body
		}
	case "image":
		withMedia(inbox.KindImage, m.Image, captionOf(m.Image))
	case "video":
		withMedia(inbox.KindVideo, m.Video, captionOf(m.Video))
	case "audio":
		withMedia(inbox.KindAudio, m.Audio, "")
	case "document":
		text := captionOf(m.Document)
		if text == "" && m.Document != nil {
			text = m.Document.Filename
		}
		withMedia(inbox.KindFile, m.Document, text)
	case "sticker":
		withMedia(inbox.KindImage, m.Sticker, "")
	case "location":
		in.Text = locationText(m.Location)
	case "contacts":
		in.Text = contactsText(m.Contacts)
	case "button":
		if m.Button != nil {
			in.Text = m.Button.Text
		}
	case "interactive":
		in.Text = interactiveText(m)
	case "reaction":
		in.Text = "[Reaction removed]"
		if m.Reaction != nil && m.Reaction.Emoji != "" {
			in.Text = "[Reacted " + m.Reaction.Emoji + " to a message]"
		}
	case "order":
		in.Text = orderText(m)
	case "system":
		if m.System != nil {
			in.Text = "[" + m.System.Body + "]"
		}
	}
	if in.Text == "" && in.MediaFor == "" {
		in.Text = unsupportedText(m)
	}
	if in.MediaFor != "" && in.MediaID == "" {
		in.Kind, in.Text = inbox.KindText, joinText(fmt.Sprintf("[%s without an attachment id]", title(m.Type)), in.Text)
		in.MediaFor = ""
	}
	return in
}

func captionOf(md *media) string {
	if md == nil {
		return ""
	}
	return md.Caption
}

func locationText(l *location) string {
	if l == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("📍 ")
	place := strings.TrimSpace(strings.Join(nonEmpty(l.Name, l.Address), ", "))
	if place != "" {
		b.WriteString(place + " ")
	}
	fmt.Fprintf(&b, "https://maps.google.com/?q=%s,%s",
		strconv.FormatFloat(l.Latitude, 'f', -1, 64), strconv.FormatFloat(l.Longitude, 'f', -1, 64))
	return b.String()
}

func contactsText(cards []contactCard) string {
	var lines []string
	for _, c := range cards {
		name := c.Name.FormattedName
		if name == "" {
			name = strings.TrimSpace(c.Name.FirstName + " " + c.Name.LastName)
		}
		parts := nonEmpty(name, c.Org.Company)
		for _, p := range c.Phones {
			parts = append(parts, p.Phone)
		}
		for _, e := range c.Emails {
			parts = append(parts, e.Email)
		}
		parts = nonEmpty(parts...)
		if len(parts) > 0 {
			lines = append(lines, "👤 "+strings.Join(parts, ", "))
		}
	}
	if len(lines) == 0 {
		return "[Shared a contact]"
	}
	return strings.Join(lines, "\n")
}

func interactiveText(m message) string {
	i := m.Interactive
	if i == nil {
		return ""
	}
	switch {
	case i.ButtonReply != nil:
		return i.ButtonReply.Title
	case i.ListReply != nil:
		return joinText(i.ListReply.Title, i.ListReply.Description)
	case i.NfmReply != nil:
		if i.NfmReply.Body != "" {
			return i.NfmReply.Body
		}
		return "[Sent a form]"
	}
	return ""
}

func orderText(m message) string {
	if m.Order == nil {
		return ""
	}
	n := len(m.Order.ProductItems)
	t := fmt.Sprintf("[Sent an order of %d item", n)
	if n != 1 {
		t += "s"
	}
	t += "]"
	for _, it := range m.Order.ProductItems {
		t += fmt.Sprintf("\n%s × %s", it.ProductRetailerID, it.Quantity)
	}
	return joinText(t, m.Order.Text)
}

// unsupportedText is the placeholder for a message OneBox cannot show:
// the agent learns that something came and what it was.
func unsupportedText(m message) string {
	t := fmt.Sprintf("[Unsupported WhatsApp message of type %q", m.Type)
	if m.Type == "" || m.Type == "unsupported" || m.Type == "unknown" {
		t = "[Unsupported WhatsApp message"
	}
	if len(m.Errors) > 0 {
		if e := errorOf(m.Errors); e != nil {
			t += ": " + e.Message
		}
	}
	return t + "; open WhatsApp to see it]"
}

func title(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}

func joinText(parts ...string) string { return strings.Join(nonEmpty(parts...), "\n") }

func nonEmpty(parts ...string) []string {
	out := parts[:0:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// unixTime reads Meta's seconds-since-epoch timestamps; zero when absent
// or unreadable (the store then uses its own clock).
func unixTime(f flex) time.Time {
	n, err := strconv.ParseInt(string(f), 10, 64)
	if err != nil || n <= 0 || n > 1<<40 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}
