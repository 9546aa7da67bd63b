package privacy

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/onebox/onebox/internal/inbox"
)

// SecretKeyFile is the server key's file under the data directory, used
// when ONEBOX_SECRET_KEY is not set.
const SecretKeyFile = "secret.key"

// LoadSecretKey returns the key that seals channel secrets in the store:
// fromEnv (ONEBOX_SECRET_KEY: 32 bytes as base64 or hex) when set,
// otherwise <dataDir>/secret.key, made with 0600 permissions on first
// start. Keeping the key out of the database file is the point: a copy of
// that file alone reveals no channel secret. Losing the key loses the
// channels' secrets (they must be entered again), not the messages.
func LoadSecretKey(dataDir, fromEnv string) ([]byte, error) {
	if fromEnv != "" {
		key, err := decodeKey(fromEnv)
		if err != nil {
			return nil, fmt.Errorf("ONEBOX_SECRET_KEY: %w", err)
		}
		return key, nil
	}
	path := filepath.Join(dataDir, SecretKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		st, err := os.Stat(path)
		if err == nil && st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s is readable by other users (mode %v): chmod 600 it", path, st.Mode().Perm())
		}
		key, err := decodeKey(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	key := make([]byte, inbox.SecretKeySize)
	rand.Read(key) // never fails on supported platforms (crypto/rand docs)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secret key: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write secret key: %w", err)
	}
	return key, nil
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 2*inbox.SecretKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == inbox.SecretKeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("want %d bytes as base64 or hex (openssl rand -base64 32)", inbox.SecretKeySize)
}
