package privacy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/onebox/onebox/internal/bolt"
	"github.com/onebox/onebox/internal/inbox"
	"github.com/onebox/onebox/internal/privacy"
)

func TestLoadSecretKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := privacy.LoadSecretKey(dir, "")
	if err != nil || len(k1) != inbox.SecretKeySize {
		t.Fatalf("first start: %d bytes, %v", len(k1), err)
	}
	st, err := os.Stat(filepath.Join(dir, privacy.SecretKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	k2, err := privacy.LoadSecretKey(dir, "")
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second start read another key: %v", err)
	}
	os.Chmod(filepath.Join(dir, privacy.SecretKeyFile), 0o644)
	if _, err := privacy.LoadSecretKey(dir, ""); err == nil {
		t.Error("a key file others can read was accepted")
	}

	want := bytes.Repeat([]byte{7}, 32)
	for _, env := range []string{base64.StdEncoding.EncodeToString(want), hex.EncodeToString(want)} {
		got, err := privacy.LoadSecretKey(t.TempDir(), env)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ONEBOX_SECRET_KEY %q: %v", env, err)
		}
	}
	for _, bad := range []string{"short", base64.StdEncoding.EncodeToString(want[:16])} {
		if _, err := privacy.LoadSecretKey(t.TempDir(), bad); err == nil {
			t.Errorf("ONEBOX_SECRET_KEY %q accepted", bad)
		}
	}
}

func TestChannelSecretsAreSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "onebox.db")
	store, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc, err := inbox.NewService(inbox.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _, _, key, err := svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := svc.SignIn(ctx, key, inbox.Device{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(secret string) map[string]string {
		return map[string]string{"phone_number_id": "1", "access_token": "TOKEN-" + secret, "app_secret": secret, "verify_token": "v"}
	}
	// Stored before the server had a key, as an older version did.
	legacy, err := svc.CreateChannel(ctx, admin, inbox.ChannelWhatsApp, "Old", cfg("LEGACY-SECRET-0a11"))
	if err != nil {
		t.Fatal(err)
	}
	if !fileHas(t, path, "LEGACY-SECRET-0a11") {
		t.Fatal("the plain secret is not in the file to begin with; this test shows nothing")
	}

	skey, err := privacy.LoadSecretKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetSecretKey(skey); err != nil {
		t.Fatal(err)
	}
	n, err := svc.SealChannelSecrets(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sealed %d, %v", n, err)
	}
	if err := store.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	fresh, err := svc.CreateChannel(ctx, admin, inbox.ChannelWhatsApp, "New", cfg("FRESH-SECRET-9b22"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"LEGACY-SECRET-0a11", "FRESH-SECRET-9b22"} {
		if fileHas(t, path, s) {
			t.Errorf("%s is readable in the store's files", s)
		}
	}
	for id, want := range map[string]string{legacy.ID: "LEGACY-SECRET-0a11", fresh.ID: "FRESH-SECRET-9b22"} {
		ch, err := svc.ChannelByID(ctx, id)
		if err != nil || ch.Config["app_secret"] != want || ch.Config["access_token"] != "TOKEN-"+want {
			t.Errorf("channel %s opens to %v, %v", id, ch.Config, err)
		}
	}
	if n, err := svc.SealChannelSecrets(ctx); err != nil || n != 0 {
		t.Errorf("sealing again: %d, %v", n, err)
	}

	// Another key opens nothing, and says why.
	if err := svc.SetSecretKey(bytes.Repeat([]byte{1}, 32)); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ChannelByID(ctx, fresh.ID); err == nil {
		t.Error("a channel opened with the wrong key")
	}
}

// fileHas reports whether s is readable in the store at rest: its database
// file or the write-ahead log segments beside it.
func fileHas(t *testing.T, path, s string) bool {
	t.Helper()
	logs, err := bolt.LogFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append([]string{path}, logs...) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}
