package pki

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestNewJoinToken(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 200 {
		id, secret, err := NewJoinToken()
		if err != nil {
			t.Fatal(err)
		}
		tok := id + "." + secret
		pid, psecret, err := ParseJoinToken(tok)
		if err != nil || pid != id || psecret != secret {
			t.Fatalf("ParseJoinToken(%q) = %q, %q, %v", tok, pid, psecret, err)
		}
		if seen[tok] {
			t.Fatalf("token %q made twice", tok)
		}
		seen[tok] = true
		for _, r := range secret {
			counts[r]++
		}
	}
	// 3200 characters over 36 symbols: every symbol turns up.
	if len(counts) != 36 {
		t.Errorf("secrets use %d distinct characters, want 36", len(counts))
	}
}

func TestParseJoinToken(t *testing.T) {
	tests := []struct {
		in         string
		id, secret string
		ok         bool
	}{
		{"abc123.0123456789abcdef", "abc123", "0123456789abcdef", true},
		{"zzzzzz.zzzzzzzzzzzzzzzz", "zzzzzz", "zzzzzzzzzzzzzzzz", true},
		{"", "", "", false},
		{"abc123", "", "", false},
		{"abc123.", "", "", false},
		{".0123456789abcdef", "", "", false},
		{"abc12.0123456789abcdef", "", "", false},
		{"abc1234.0123456789abcdef", "", "", false},
		{"abc123.0123456789abcde", "", "", false},
		{"abc123.0123456789abcdef0", "", "", false},
		{"ABC123.0123456789abcdef", "", "", false},
		{"abc123.0123456789ABCDEF", "", "", false},
		{"abc-23.0123456789abcdef", "", "", false},
		{"abc123:0123456789abcdef", "", "", false},
		{"abc123.0123456789abcdef\n", "", "", false},
		{" abc123.0123456789abcdef", "", "", false},
		{"abc123.01234567.9abcdef", "", "", false},
		{"abc123.0123456789abcdé", "", "", false},
	}
	for _, tt := range tests {
		id, secret, err := ParseJoinToken(tt.in)
		if !tt.ok {
			if err == nil {
				t.Errorf("ParseJoinToken(%q) succeeded", tt.in)
				continue
			}
			if !strings.Contains(err.Error(), `"<id>.<secret>"`) {
				t.Errorf("ParseJoinToken(%q): error %q does not name the format", tt.in, err)
			}
			if tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParseJoinToken(%q): error repeats the token", tt.in)
			}
			continue
		}
		if err != nil || id != tt.id || secret != tt.secret {
			t.Errorf("ParseJoinToken(%q) = %q, %q, %v", tt.in, id, secret, err)
		}
	}
}

func TestHashSecret(t *testing.T) {
	got := hex.EncodeToString(HashSecret("abc"))
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashSecret(abc) = %s, want %s", got, want)
	}
}

func TestNewBearerToken(t *testing.T) {
	re := regexp.MustCompile(`^ebf_[A-Za-z0-9_-]{43}$`)
	a, err := NewBearerToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewBearerToken()
	if !re.MatchString(a) || a == b {
		t.Fatalf("tokens %q %q", a, b)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(a[4:]); err != nil || len(raw) != 32 {
		t.Errorf("decoded %d bytes, err %v", len(raw), err)
	}
}

func TestParseTokensFile(t *testing.T) {
	hashOf := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	hexOf := func(s string) string { h := hashOf(s); return hex.EncodeToString(h[:]) }
	tests := []struct {
		name    string
		data    string
		want    []StaticToken
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"good", "tok-a,alice,admin\ntok-b,bob,viewer\n", []StaticToken{
			{hashOf("tok-a"), "alice", "admin"}, {hashOf("tok-b"), "bob", "viewer"},
		}, ""},
		{"hashed", "sha256:" + hexOf("tok-c") + ",carol,operator", []StaticToken{{hashOf("tok-c"), "carol", "operator"}}, ""},
		{"hashed upper-case hex", "sha256:" + strings.ToUpper(hexOf("tok-c")) + ",carol,operator", []StaticToken{{hashOf("tok-c"), "carol", "operator"}}, ""},
		{"comments, blanks and spaces", "# people\n\n  \n  # indented comment\r\n  tok-a , alice ,  admin  \r\n", []StaticToken{{hashOf("tok-a"), "alice", "admin"}}, ""},

		{"bad role", "tok-a,alice,admin\n# x\ntok-b,bob,root\n", nil, `line 3: role "root": want viewer, operator or admin`},
		{"empty role", "tok-a,alice,", nil, `line 1: role "": want viewer, operator or admin`},
		{"missing field", "tok-a,alice\n", nil, "line 1: 2 fields, want 3"},
		{"extra field", "tok-a,alice,admin,x\n", nil, "line 1: 4 fields, want 3"},
		{"empty token", " ,alice,admin", nil, "line 1: empty token"},
		{"empty name", "tok-a,,admin", nil, "line 1: name is empty"},
		{"bad name", "tok-a,alice smith,admin", nil, `line 1: name "alice smith": character ' ' not allowed`},
		{"space in token", "tok a,alice,admin", nil, "line 1: token contains whitespace"},
		{"short hash", "sha256:abcd,alice,admin", nil, "line 1: hash: want sha256: and 64 hex digits"},
		{"bad hex", "sha256:" + strings.Repeat("zz", 32) + ",alice,admin", nil, "line 1: hash"},
		{"duplicate token", "tok-a,alice,admin\ntok-a,bob,viewer", nil, "line 2: the same token as line 1"},
		{"duplicate token, hashed", "tok-a,alice,admin\n\nsha256:" + hexOf("tok-a") + ",bob,viewer", nil, "line 3: the same token as line 1"},
		{"duplicate name", "tok-a,alice,admin\ntok-b,alice,viewer", nil, `line 2: name "alice" already used on line 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokensFile([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "tok-") {
					t.Errorf("error %q repeats a token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d tokens, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("token %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestMatchToken(t *testing.T) {
	tokens, err := ParseTokensFile([]byte("tok-a,alice,admin\nsha256:" + hex.EncodeToString(HashSecret("tok-b")) + ",bob,viewer\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := MatchToken(tokens, "tok-b"); !ok || got.Name != "bob" || got.Role != RoleViewer {
		t.Errorf("tok-b: %+v %v", got, ok)
	}
	if got, ok := MatchToken(tokens, "tok-a"); !ok || got.Name != "alice" {
		t.Errorf("tok-a: %+v %v", got, ok)
	}
	if _, ok := MatchToken(tokens, "tok-c"); ok {
		t.Error("unknown token matched")
	}
}

func TestLoadOrCreateAdminToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	tok, created, err := LoadOrCreateAdminToken(dir)
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	if !strings.HasPrefix(tok, "ebf_") || len(tok) != 47 {
		t.Errorf("token %q is not a bearer token", tok)
	}
	st, err := os.Stat(filepath.Join(dir, AdminTokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v err %v; want 0600", st.Mode().Perm(), err)
	}
	again, created, err := LoadOrCreateAdminToken(dir)
	if err != nil || created || again != tok {
		t.Errorf("second call: %q created=%v err=%v; want %q", again, created, err, tok)
	}

	// A token written by hand, with a trailing newline, is read as is.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, AdminTokenFile), []byte("ebf_handmade\n"), 0o600)
	if got, created, err := LoadOrCreateAdminToken(other); err != nil || created || got != "ebf_handmade" {
		t.Errorf("hand-written: %q created=%v err=%v", got, created, err)
	}
	for name, content := range map[string]string{"empty": "\n", "two lines": "a\nb\n"} {
		os.WriteFile(filepath.Join(other, AdminTokenFile), []byte(content), 0o600)
		if _, _, err := LoadOrCreateAdminToken(other); err == nil {
			t.Errorf("%s file accepted", name)
		}
	}
}
