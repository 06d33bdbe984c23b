package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Before anything touches the network, a missing or contradictory enrolment is refused with
// the flag to fix named.
func TestLoadOrJoinNamesTheFlagToFix(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("abc123.0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		e    Enrolment
		want string
	}{
		{"both tokens", Enrolment{Token: "abc123.0123456789abcdef", TokenFile: tokenFile}, "give one, not both"},
		{"missing token file", Enrolment{TokenFile: filepath.Join(t.TempDir(), "nope")}, "--join-token-file"},
		{"no identity, no token", Enrolment{}, "--join-token or --join-token-file is required"},
		{"token without CA", Enrolment{TokenFile: tokenFile}, "--ca is required"},
		{"missing CA file", Enrolment{TokenFile: tokenFile, CAFile: filepath.Join(t.TempDir(), "ca.crt")}, "--ca"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.e.Cluster, tt.e.Dir = "eu-1", filepath.Join(t.TempDir(), "identity")
			tt.e.Controllers = []string{"https://127.0.0.1:1"}
			id, err := LoadOrJoin(context.Background(), log, tt.e)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadOrJoin = %v, %v; want an error containing %q", id, err, tt.want)
			}
			if st, err := os.Stat(tt.e.Dir); err == nil && st.Mode().Perm() != 0o700 {
				t.Errorf("identity dir mode %v, want 0700", st.Mode().Perm())
			}
		})
	}
}
