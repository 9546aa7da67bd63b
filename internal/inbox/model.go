// Package inbox holds OneBox's domain: the records a tenant owns, the rules
// that change them, and the interfaces the outside world (stores, channels,
// live fan-out) must satisfy. It performs no I/O of its own so the rules can be
// tested as plain functions and the storage engine can be swapped.
package inbox

import (
	"encoding/json"
	"time"
)

// Role is what an agent may do inside its tenant.
type Role string

const (
	RoleAdmin Role = "admin"
	RoleAgent Role = "agent"
)

// Valid reports whether r is a role the contract knows.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleAgent }

// Tenant is one organization; everything else hangs off a tenant.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Agent is a person of a tenant. Online is not stored: it is filled in from
// the live stream when an agent is shown.
type Agent struct {
	ID         string      `json:"id"`
	TenantID   string      `json:"-"`
	Name       string      `json:"name"`
	Email      string      `json:"email,omitempty"`
	Role       Role        `json:"role"`
	Active     bool        `json:"active"`
	Online     bool        `json:"online"`
	CreatedAt  time.Time   `json:"created_at"`
	LastSeenAt *time.Time  `json:"last_seen_at"`
	Keys       []AccessKey `json:"keys,omitempty"`
}

// AccessKey is the long-lived credential an admin hands to an agent. Only the
// SHA-256 of the raw key is kept, so a leaked store cannot sign anyone in.
type AccessKey struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"-"`
	AgentID    string     `json:"-"`
	Prefix     string     `json:"prefix"`
	Hash       string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// Device describes where a session was opened, so an agent can recognise it.
type Device struct {
	Name     string `json:"name"`
	Platform string `json:"platform"`
}

// Session is one signed-in device. The bearer token is never stored; Hash is
// its SHA-256 and also the session's identity.
type Session struct {
	Hash      string    `json:"hash"`
	TenantID  string    `json:"tenant_id"`
	AgentID   string    `json:"agent_id"`
	KeyID     string    `json:"key_id"`
	Device    Device    `json:"device"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Channel types the contract names.
const (
	ChannelWhatsApp = "whatsapp"
	ChannelTikTok   = "tiktok"
	ChannelSMS      = "sms"
	ChannelDemo     = "demo"
)

// Channel is a tenant's connection to one messaging provider. Config holds
// provider credentials and is never serialised to API clients.
type Channel struct {
	ID         string            `json:"id"`
	TenantID   string            `json:"-"`
	Type       string            `json:"type"`
	Name       string            `json:"name"`
	Config     map[string]string `json:"-"`
	WebhookURL string            `json:"webhook_url,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
}

// ChannelRef is the part of a channel embedded in conversations.
type ChannelRef struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Name string `json:"name"`
}

// Contact is a customer as seen through one channel; Handle is the provider's
// address for them (WhatsApp wa_id, TikTok user id, phone number).
type Contact struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"-"`
	ChannelID string    `json:"channel_id"`
	Name      string    `json:"name"`
	Handle    string    `json:"handle"`
	CreatedAt time.Time `json:"created_at"`
	// ReplyTo is where replies are addressed when the provider wants
	// something other than Handle (TikTok: its conversation id).
	ReplyTo string `json:"reply_to,omitempty"`
}

// ContactRef is the part of a contact embedded in conversations.
type ContactRef struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Handle string `json:"handle"`
}

// Status is a conversation's place in the team's workflow.
type Status string

const (
	StatusOpen     Status = "open"
	StatusPending  Status = "pending"
	StatusSnoozed  Status = "snoozed"
	StatusResolved Status = "resolved"
)

// Valid reports whether s is a status the contract knows.
func (s Status) Valid() bool {
	switch s {
	case StatusOpen, StatusPending, StatusSnoozed, StatusResolved:
		return true
	}
	return false
}

// Conversation is the thread between a tenant and one contact on one channel.
type Conversation struct {
	ID             string     `json:"id"`
	TenantID       string     `json:"-"`
	Channel        ChannelRef `json:"channel"`
	Contact        ContactRef `json:"contact"`
	Status         Status     `json:"status"`
	AssigneeID     *string    `json:"assignee_id"`
	Labels         []string   `json:"labels"`
	UnreadCount    int        `json:"unread_count"`
	SnoozedUntil   *time.Time `json:"snoozed_until"`
	LastMessage    *Message   `json:"last_message"`
	LastActivityAt time.Time  `json:"last_activity_at"`
	LastInboundAt  *time.Time `json:"last_inbound_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// Direction of a message relative to the tenant.
type Direction string

const (
	DirectionIn  Direction = "in"
	DirectionOut Direction = "out"
)

// Author of a message.
type Author struct {
	Type string `json:"type"` // contact, agent, system
	ID   string `json:"id"`
}

// Message kinds.
const (
	KindText    = "text"
	KindImage   = "image"
	KindFile    = "file"
	KindAudio   = "audio"
	KindVideo   = "video"
	KindProduct = "product"
	KindNote    = "note"
)

// MessageStatus tracks delivery; inbound messages are always "received".
type MessageStatus string

const (
	MsgReceived  MessageStatus = "received"
	MsgPending   MessageStatus = "pending"
	MsgSent      MessageStatus = "sent"
	MsgDelivered MessageStatus = "delivered"
	MsgRead      MessageStatus = "read"
	MsgFailed    MessageStatus = "failed"
)

// MessageError explains why an outbound message failed.
type MessageError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Media is a reference to stored bytes attached to a message. URL and
// ThumbnailURL carry a short-lived signature; they are filled in each time
// a media object is shown (see Service.SetMediaURLs), so a stored copy may
// hold an expired one.
type Media struct {
	ID           string `json:"id"`
	Mime         string `json:"mime,omitempty"`
	Size         int64  `json:"size,omitempty"`
	SHA256       string `json:"sha256,omitempty"`
	URL          string `json:"url,omitempty"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	Name         string `json:"name,omitempty"`
	// Width and Height are an image's displayed size in pixels, so apps
	// can lay out a message before its picture arrives.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
}

// Message is one entry of a conversation.
type Message struct {
	ID             string        `json:"id"`
	TenantID       string        `json:"-"`
	ConversationID string        `json:"conversation_id"`
	ClientID       string        `json:"client_id,omitempty"`
	Direction      Direction     `json:"direction"`
	Author         Author        `json:"author"`
	Kind           string        `json:"kind"`
	Text           string        `json:"text"`
	Media          *Media        `json:"media,omitempty"`
	Product        *Product      `json:"product,omitempty"`
	Status         MessageStatus `json:"status"`
	Error          *MessageError `json:"error,omitempty"`
	ExternalID     string        `json:"external_id,omitempty"`
	Private        bool          `json:"private,omitempty"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
}

// Event types written to a tenant's log.
const (
	EventConversationCreated = "conversation.created"
	EventConversationUpdated = "conversation.updated"
	EventMessageCreated      = "message.created"
	EventMessageUpdated      = "message.updated"
	EventAgentUpdated        = "agent.updated"
	EventContactErased       = "contact.erased"
	EventChannelUpdated      = "channel.updated"
	EventProductCreated      = "product.created"
	EventProductUpdated      = "product.updated"
	EventProductDeleted      = "product.deleted"
)

// Event is one entry of a tenant's log. Seq is assigned by the store inside
// the transaction that writes the change, so the log has no gaps.
type Event struct {
	Seq      uint64          `json:"seq"`
	Type     string          `json:"type"`
	At       time.Time       `json:"at"`
	Data     json.RawMessage `json:"data"`
	TenantID string          `json:"-"`
}
