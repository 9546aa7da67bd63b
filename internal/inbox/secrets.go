package inbox

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// SecretKeySize is the length of the server key that seals channel
// secrets (AES-256).
const SecretKeySize = 32

// sealedPrefix marks a value sealed with the server key; the version lets
// the format change later.
const sealedPrefix = "v1:"

// secretBox seals channel configs (tokens, app secrets) with AES-GCM under
// a key kept outside the store, so a copy of the database file alone
// reveals none of them.
type secretBox struct{ aead cipher.AEAD }

func newSecretBox(key []byte) (*secretBox, error) {
	if len(key) != SecretKeySize {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", SecretKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &secretBox{aead: aead}, nil
}

// seal encrypts plain; ad binds the result to its record (the channel id),
// so a sealed config cannot be moved to another channel.
func (b *secretBox) seal(plain []byte, ad string) string {
	nonce := make([]byte, b.aead.NonceSize())
	rand.Read(nonce) // never fails on supported platforms (crypto/rand docs)
	out := b.aead.Seal(nonce, nonce, plain, []byte(ad))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out)
}

func (b *secretBox) open(sealed, ad string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return nil, errors.New("unknown sealed format")
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return nil, errors.New("sealed value is damaged")
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(ad))
	if err != nil {
		return nil, errors.New("sealed value does not open with this server key (was ONEBOX_SECRET_KEY or the key file changed?)")
	}
	return plain, nil
}

// SetSecretKey makes the service seal channel configs from now on. Without
// a key (tests, tools) configs are stored as they are.
func (s *Service) SetSecretKey(key []byte) error {
	b, err := newSecretBox(key)
	if err != nil {
		return err
	}
	s.secrets = b
	return nil
}

// storedChannel is the record kept for c: its config sealed when the
// service has a key.
func (s *Service) storedChannel(c Channel) channelRecord {
	if s.secrets == nil {
		return channelRecord{Channel: c, Config: c.Config}
	}
	plain, _ := json.Marshal(c.Config) // a map of strings always encodes
	return channelRecord{Channel: c, Sealed: s.secrets.seal(plain, c.ID)}
}

// openChannel turns a record back into the channel, opening its config.
func (s *Service) openChannel(r channelRecord, tenant string) (Channel, error) {
	c := r.channel(tenant)
	if r.Sealed == "" {
		return c, nil
	}
	if s.secrets == nil {
		return Channel{}, fmt.Errorf("channel %s: its config is sealed and the server has no secret key", r.ID)
	}
	plain, err := s.secrets.open(r.Sealed, r.ID)
	if err != nil {
		return Channel{}, fmt.Errorf("channel %s: %w", r.ID, err)
	}
	if err := json.Unmarshal(plain, &c.Config); err != nil {
		return Channel{}, fmt.Errorf("channel %s: decode config: %w", r.ID, err)
	}
	return c, nil
}

// SealChannelSecrets rewrites channel records stored before the server had
// a key, so their secrets are sealed too. It reports how many it sealed;
// the caller compacts the store afterwards so the old plain copies leave
// the file.
func (s *Service) SealChannelSecrets(ctx context.Context) (int, error) {
	if s.secrets == nil {
		return 0, errors.New("seal channel secrets: no secret key")
	}
	n := 0
	err := s.store.Update(ctx, func(tx Tx) error {
		n = 0 // a store may run the fn more than once
		var homes []struct{ id, tenant string }
		if err := tx.Scan(global(CollChannelHome), "", "", false, func(k string, raw []byte) (bool, error) {
			var t string
			if err := json.Unmarshal(raw, &t); err != nil {
				return false, err
			}
			homes = append(homes, struct{ id, tenant string }{k, t})
			return true, nil
		}); err != nil {
			return err
		}
		for _, h := range homes {
			var r channelRecord
			if err := getIn(tx, h.tenant, CollChannels, h.id, "channel", &r); err != nil {
				return err
			}
			if r.Sealed != "" {
				continue
			}
			c := r.channel(h.tenant)
			if err := tx.Put(tenantColl(h.tenant, CollChannels), h.id, s.storedChannel(c)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seal channel secrets: %w", err)
	}
	return n, nil
}
