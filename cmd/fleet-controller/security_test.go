package main

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/internal/pki"
)

// The first start of a bootstrapping node creates the CA and an admin token, owner-only, and
// says where; the next start loads the same ones; a joining node without the CA is told
// what to copy.
func TestFirstStartCreatesCAAndAdminCredential(t *testing.T) {
	data := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	f := flags{dataDir: data}
	sec, err := setupSecurity(f, log, "n1", true, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "pki")
	for _, name := range []string{pki.CACertFile, pki.CAKeyFile, pki.AdminTokenFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	for _, want := range []string{"created the controller group's certificate authority", "created an admin credential", filepath.Join(dir, pki.AdminTokenFile)} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	tok, err := os.ReadFile(filepath.Join(dir, pki.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.tokens) != 1 || sec.tokens[0].Role != "admin" || sec.tokens[0].Hash != sha256.Sum256(bytes.TrimSpace(tok)) {
		t.Errorf("the admin token file's token is not accepted as admin: %+v", sec.tokens)
	}

	logs.Reset()
	again, err := setupSecurity(f, log, "n1", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again.ca.Cert.Equal(sec.ca.Cert) || strings.Contains(logs.String(), "created") {
		t.Errorf("a restart made a new CA or credential; log:\n%s", logs.String())
	}

	_, err = setupSecurity(flags{dataDir: t.TempDir()}, log, "n2", false, nil)
	if err == nil || !strings.Contains(err.Error(), "--pki-dir") || !strings.Contains(err.Error(), pki.CAKeyFile) {
		t.Errorf("a joining node without the CA: %v", err)
	}
	joined, err := setupSecurity(flags{dataDir: t.TempDir(), pkiDir: dir}, log, "n2", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !joined.ca.Cert.Equal(sec.ca.Cert) {
		t.Error("a node joining with the shared --pki-dir has another CA")
	}
}

func TestTokensFileAndJWTFlags(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# people\nsecret-one,alice,operator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	sec, err := setupSecurity(flags{dataDir: dir, tokensFile: tokens}, log, "n1", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.tokens) != 2 || sec.tokens[1].Name != "alice" {
		t.Errorf("tokens: %+v", sec.tokens)
	}
	if err := os.WriteFile(tokens, []byte("secret-one,alice,root\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := setupSecurity(flags{dataDir: dir, tokensFile: tokens}, log, "n1", true, nil); err == nil || !strings.Contains(err.Error(), "--tokens-file") {
		t.Errorf("a bad role in the tokens file: %v", err)
	}
	if _, err := setupSecurity(flags{dataDir: dir, jwtIssuer: "https://issuer"}, log, "n1", true, nil); err == nil || !strings.Contains(err.Error(), "--jwt-key") {
		t.Errorf("--jwt-issuer alone: %v", err)
	}
}
