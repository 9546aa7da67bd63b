package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// channelFields lists each type's config: required fields, then optional
// URL fields (validated as http(s) URLs).
var channelFields = map[string]struct{ required, urls []string }{
	ChannelWhatsApp: {required: []string{"phone_number_id", "access_token", "app_secret", "verify_token"}, urls: []string{"api_base_url"}},
	ChannelTikTok:   {required: []string{"business_id", "access_token", "client_secret"}, urls: []string{"api_base_url"}},
	ChannelSMS:      {required: []string{"send_url", "auth_token", "webhook_secret"}, urls: []string{"send_url"}},
	ChannelDemo:     {},
}

// ValidateChannelConfig checks a channel's config against its type.
func ValidateChannelConfig(typ string, cfg map[string]string) error {
	f, ok := channelFields[typ]
	if !ok {
		return invalid("type must be one of whatsapp, tiktok, sms, demo")
	}
	for _, k := range f.required {
		if strings.TrimSpace(cfg[k]) == "" {
			return invalid("config.%s is required for %s channels", k, typ)
		}
	}
	for _, k := range f.urls {
		v := cfg[k]
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("config.%s must be an http(s) URL", k)
		}
	}
	if v := cfg["api_version"]; typ == ChannelWhatsApp && v != "" && !graphVersion.MatchString(v) {
		return invalid("config.api_version must be a Graph API version such as v21.0")
	}
	return nil
}

// graphVersion is the shape of a Graph API version; it becomes part of
// the URLs messages are sent to.
var graphVersion = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,3}$`)

// webhookURL is where the provider must post for this channel.
func (s *Service) webhookURL(c Channel) string {
	if c.Type == ChannelDemo {
		return ""
	}
	return strings.TrimRight(s.publicURL, "/") + "/webhooks/" + c.Type + "/" + c.ID
}

// CreateChannel connects a provider account to the tenant.
func (s *Service) CreateChannel(ctx context.Context, p Principal, typ, name string, cfg map[string]string) (Channel, error) {
	if err := p.requireAdmin(); err != nil {
		return Channel{}, err
	}
	name, err := CleanName("name", name, true)
	if err != nil {
		return Channel{}, err
	}
	if cfg == nil {
		cfg = map[string]string{}
	}
	if err := ValidateChannelConfig(typ, cfg); err != nil {
		return Channel{}, err
	}
	c := Channel{ID: s.newID(), TenantID: p.Tenant.ID, Type: typ, Name: name, Config: cfg, CreatedAt: s.clock()}
	err = s.store.Update(ctx, func(tx Tx) error {
		if err := tx.Put(tenantColl(c.TenantID, CollChannels), c.ID, s.storedChannel(c)); err != nil {
			return err
		}
		if err := s.audit(tx, p, AuditChannelCreated, "channel", c.ID); err != nil {
			return err
		}
		return tx.Put(global(CollChannelHome), c.ID, c.TenantID)
	})
	if err != nil {
		return Channel{}, fmt.Errorf("create channel: %w", err)
	}
	c.WebhookURL = s.webhookURL(c)
	return c, nil
}

// channelRecord is how a channel is stored: the config is kept, unlike in
// the API's JSON, which never shows secrets.
type channelRecord struct {
	Channel
	Config map[string]string `json:"config,omitempty"`
	// Sealed is the config encrypted with the server key (secrets.go),
	// which replaces Config when the server has one.
	Sealed string `json:"sealed_config,omitempty"`
}

func (r channelRecord) channel(tenant string) Channel {
	c := r.Channel
	c.Config = r.Config
	c.TenantID = tenant
	return c
}

// ListChannels shows the tenant's channels (never their secrets).
func (s *Service) ListChannels(ctx context.Context, p Principal) ([]Channel, error) {
	if err := p.requireAdmin(); err != nil {
		return nil, err
	}
	out := []Channel{}
	err := s.store.View(ctx, func(tx Tx) error {
		return scanJSON(tx, tenantColl(p.Tenant.ID, CollChannels), "", func(r channelRecord) bool {
			c := r.channel(p.Tenant.ID)
			c.WebhookURL = s.webhookURL(c)
			out = append(out, c)
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// DeleteChannel disconnects a provider account. Its conversations stay for
// the record; its webhooks stop being accepted.
func (s *Service) DeleteChannel(ctx context.Context, p Principal, id string) error {
	if err := p.requireAdmin(); err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx Tx) error {
		var r channelRecord
		if err := getIn(tx, p.Tenant.ID, CollChannels, id, "channel", &r); err != nil {
			return err
		}
		if err := tx.Delete(tenantColl(p.Tenant.ID, CollChannels), id); err != nil {
			return err
		}
		if err := s.audit(tx, p, AuditChannelDeleted, "channel", id); err != nil {
			return err
		}
		return tx.Delete(global(CollChannelHome), id)
	})
}

// ChannelByID finds a channel for a webhook, which arrives without a tenant.
func (s *Service) ChannelByID(ctx context.Context, id string) (Channel, error) {
	var c Channel
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		c, err = s.channelIn(tx, id)
		return err
	})
	return c, err
}

// channelHeader is channelIn without the channel's config: its id,
// tenant, type and settings. The webhooks' write paths need no more, and
// for every message opening the sealed config would cost an AES-GCM
// open and a JSON decode on the busiest path there is.
func (s *Service) channelHeader(tx Tx, id string) (Channel, error) {
	r, tenant, err := s.channelRecordIn(tx, id)
	if err != nil {
		return Channel{}, err
	}
	c := r.channel(tenant)
	c.Config = nil
	return c, nil
}

func (s *Service) channelIn(tx Tx, id string) (Channel, error) {
	r, tenant, err := s.channelRecordIn(tx, id)
	if err != nil {
		return Channel{}, err
	}
	return s.openChannel(r, tenant)
}

// channelRecordIn loads a channel's stored record and its tenant.
func (s *Service) channelRecordIn(tx Tx, id string) (channelRecord, string, error) {
	var tenant string
	if err := tx.Get(global(CollChannelHome), id, &tenant); err != nil {
		if errors.Is(err, ErrNotFound) {
			return channelRecord{}, "", notFound("channel")
		}
		return channelRecord{}, "", err
	}
	var raw json.RawMessage
	if err := getIn(tx, tenant, CollChannels, id, "channel", &raw); err != nil {
		return channelRecord{}, "", err
	}
	r, err := s.decoded.channels.decode(recordKey(tenant, id), raw, nil)
	if err != nil {
		return channelRecord{}, "", fmt.Errorf("load channel: decode: %w", err)
	}
	return r, tenant, nil
}

// ChannelsOfType lists every channel of a type across tenants, for workers
// (the demo simulator) that drive all of them.
func (s *Service) ChannelsOfType(ctx context.Context, typ string) ([]Channel, error) {
	var out []Channel
	err := s.store.View(ctx, func(tx Tx) error {
		var ids []string
		if err := tx.Scan(global(CollChannelHome), "", "", false, func(k string, _ []byte) (bool, error) {
			ids = append(ids, k)
			return true, nil
		}); err != nil {
			return err
		}
		for _, id := range ids {
			c, err := s.channelIn(tx, id)
			if err != nil {
				return err
			}
			if c.Type == typ {
				out = append(out, c)
			}
		}
		return nil
	})
	return out, err
}
