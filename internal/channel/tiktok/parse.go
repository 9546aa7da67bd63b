package tiktok

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/onebox/onebox/internal/channel"
	"github.com/onebox/onebox/internal/inbox"
)

// Webhook event names of the Business Messaging API.
const (
	EventReceive  = "im_receive_msg"
	EventSend     = "im_send_msg"
	EventMarkRead = "im_mark_read_msg"
)

// Event is one webhook delivery, parsed.
type Event struct {
	Name string
	// Business is the account the event is about (user_openid).
	Business string
	// Message is set for im_receive_msg and im_send_msg.
	Message *Message
	// Read is set for im_mark_read_msg.
	Read *Read
}

// Message is a message in a conversation between a customer and the
// business, in either direction.
type Message struct {
	ConversationID string
	ID             string
	At             time.Time
	Type           string
	FromID, From   string
	ToID, To       string
	Kind           string
	Text           string
	// MediaID is an image still to fetch.
	MediaID string
}

// Read says a user read a conversation up to a moment.
type Read struct {
	ConversationID string
	UserID         string
	Until          time.Time
}

type envelope struct {
	ClientKey  string          `json:"client_key"`
	Event      string          `json:"event"`
	CreateTime flex            `json:"create_time"`
	UserOpenID string          `json:"user_openid"`
	Content    json.RawMessage `json:"content"`
}

type user struct {
	ID string `json:"id"`
}

type content struct {
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	Timestamp      flex   `json:"timestamp"`
	Type           string `json:"type"`
	Text           *struct {
		Body string `json:"body"`
	} `json:"text"`
	Image *struct {
		MediaID string `json:"media_id"`
	} `json:"image"`
	SharePost *struct {
		EmbedURL string `json:"embed_url"`
		VideoID  string `json:"video_id"`
	} `json:"share_post"`
	Sticker *struct {
		URL string `json:"url"`
	} `json:"sticker"`
	From     string `json:"from"`
	FromUser user   `json:"from_user"`
	To       string `json:"to"`
	ToUser   user   `json:"to_user"`
	Read     *struct {
		LastReadTimestamp flex `json:"last_read_timestamp"`
	} `json:"read"`
}

type flex = channel.Flex

// Parse reads a webhook body. The envelope's content is a JSON document
// in a string (an object is accepted too). Events OneBox does not handle
// come back with only their name; a message or read event that lacks what
// identifies it is an error.
func Parse(body []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, channel.Malformed("the body is not a TikTok webhook: %v", err)
	}
	ev := Event{Name: env.Event, Business: env.UserOpenID}
	if env.Event != EventReceive && env.Event != EventSend && env.Event != EventMarkRead {
		return ev, nil
	}
	raw := bytes.TrimSpace(env.Content)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Event{}, channel.Malformed("the TikTok event's content is not readable: %v", err)
		}
		raw = []byte(s)
	}
	var c content
	if err := json.Unmarshal(raw, &c); err != nil {
		return Event{}, channel.Malformed("the TikTok event's content is not JSON: %v", err)
	}
	if env.Event == EventMarkRead {
		if c.FromUser.ID == "" || c.Read == nil {
			return Event{}, channel.Malformed("a TikTok read event without a reader or a time")
		}
		ev.Read = &Read{ConversationID: c.ConversationID, UserID: c.FromUser.ID, Until: msTime(c.Read.LastReadTimestamp)}
		if ev.Read.Until.IsZero() {
			return Event{}, channel.Malformed("a TikTok read event without a readable time")
		}
		return ev, nil
	}
	if c.MessageID == "" || c.FromUser.ID == "" || c.ToUser.ID == "" {
		return Event{}, channel.Malformed("a TikTok message without an id, a sender or a recipient")
	}
	m := &Message{
		ConversationID: c.ConversationID, ID: c.MessageID, At: msTime(c.Timestamp), Type: c.Type,
		FromID: c.FromUser.ID, From: c.From, ToID: c.ToUser.ID, To: c.To, Kind: inbox.KindText,
	}
	switch c.Type {
	case "text":
		if c.Text != nil {
			m.Text = c.Text.Body
		}
		if strings.TrimSpace(m.Text) == "" {
			m.Text = "[Empty message]"
		}
	case "image":
		if c.Image != nil && c.Image.MediaID != "" {
			m.Kind, m.MediaID = inbox.KindImage, c.Image.MediaID
		} else {
			m.Text = "[Image without an attachment id]"
		}
	case "share_post":
		m.Text = "[Shared a post]"
		if c.SharePost != nil {
			switch {
			case c.SharePost.EmbedURL != "":
				m.Text = "Shared a post: " + c.SharePost.EmbedURL
			case c.SharePost.VideoID != "":
				m.Text = "Shared a post: https://www.tiktok.com/video/" + c.SharePost.VideoID
			}
		}
	case "sticker":
		m.Text = "[Sticker]"
		if c.Sticker != nil && c.Sticker.URL != "" {
			m.Text = "[Sticker] " + c.Sticker.URL
		}
	default:
		m.Text = fmt.Sprintf("[Unsupported TikTok message of type %q; open TikTok to see it]", c.Type)
	}
	ev.Message = m
	return ev, nil
}

// msTime reads TikTok's milliseconds-since-epoch timestamps (seconds are
// recognised by their size); zero when absent or unreadable.
func msTime(f flex) time.Time {
	n, err := strconv.ParseInt(string(f), 10, 64)
	if err != nil || n <= 0 || n > 1<<50 {
		return time.Time{}
	}
	if n < 1e11 { // seconds: before 1973 in milliseconds
		return time.Unix(n, 0).UTC()
	}
	return time.UnixMilli(n).UTC()
}
