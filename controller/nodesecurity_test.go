package controller

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
	o := SecurityOptions{DataDir: data, NodeID: "n1", Bootstrap: true, Hosts: []string{"127.0.0.1"}, Log: log}
	sec, err := SetupSecurity(o)
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
	if len(sec.Tokens) != 1 || sec.Tokens[0].Role != "admin" || sec.Tokens[0].Hash != sha256.Sum256(bytes.TrimSpace(tok)) {
		t.Errorf("the admin token file's token is not accepted as admin: %+v", sec.Tokens)
	}

	logs.Reset()
	o.Hosts = nil
	again, err := SetupSecurity(o)
	if err != nil {
		t.Fatal(err)
	}
	if !again.CA.Cert.Equal(sec.CA.Cert) || strings.Contains(logs.String(), "created") {
		t.Errorf("a restart made a new CA or credential; log:\n%s", logs.String())
	}

	_, err = SetupSecurity(SecurityOptions{DataDir: t.TempDir(), NodeID: "n2", Log: log})
	if err == nil || !strings.Contains(err.Error(), "--pki-dir") || !strings.Contains(err.Error(), pki.CAKeyFile) {
		t.Errorf("a joining node without the CA: %v", err)
	}
	joined, err := SetupSecurity(SecurityOptions{DataDir: t.TempDir(), PKIDir: dir, NodeID: "n2", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if !joined.CA.Cert.Equal(sec.CA.Cert) {
		t.Error("a node joining with the shared --pki-dir has another CA")
	}
}

func TestSecurityTokensFileAndJWT(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# people\nsecret-one,alice,operator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	sec, err := SetupSecurity(SecurityOptions{DataDir: dir, TokensFile: tokens, NodeID: "n1", Bootstrap: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.Tokens) != 2 || sec.Tokens[1].Name != "alice" {
		t.Errorf("tokens: %+v", sec.Tokens)
	}
	if err := os.WriteFile(tokens, []byte("secret-one,alice,root\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := SetupSecurity(SecurityOptions{DataDir: dir, TokensFile: tokens, NodeID: "n1", Bootstrap: true, Log: log}); err == nil || !strings.Contains(err.Error(), "--tokens-file") {
		t.Errorf("a bad role in the tokens file: %v", err)
	}
	if _, err := SetupSecurity(SecurityOptions{DataDir: dir, JWTIssuer: "https://issuer", NodeID: "n1", Bootstrap: true, Log: log}); err == nil || !strings.Contains(err.Error(), "--jwt-key") {
		t.Errorf("--jwt-issuer alone: %v", err)
	}
}
