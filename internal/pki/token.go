package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ebbflow/ebbflow/internal/durable"
)

// Join tokens are "<id>.<secret>", like kubeadm's bootstrap tokens: the id names the token in
// listings and logs, the secret proves it and is stored only as its hash.
const (
	joinIDLen      = 6
	joinSecretLen  = 16
	joinAlphabet   = "abcdefghijklmnopqrstuvwxyz0123456789"
	joinFormatDesc = `want "<id>.<secret>": 6 then 16 characters of a-z and 0-9`
)

// NewJoinToken makes a random join token id and secret.
func NewJoinToken() (id, secret string, err error) {
	if id, err = randomString(joinIDLen); err != nil {
		return "", "", err
	}
	if secret, err = randomString(joinSecretLen); err != nil {
		return "", "", err
	}
	return id, secret, nil
}

// randomString is n characters drawn uniformly from joinAlphabet.
func randomString(n int) (string, error) {
	// Bytes at or above the largest multiple of the alphabet's size are dropped, so every
	// character is equally likely.
	const limit = 256 - 256%len(joinAlphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("pki: random: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, joinAlphabet[int(b)%len(joinAlphabet)])
			}
		}
	}
	return string(out), nil
}

// ParseJoinToken splits a join token "<id>.<secret>" into its parts, checking its format strictly.
// The error does not repeat s, which is a secret.
func ParseJoinToken(s string) (id, secret string, err error) {
	id, secret, ok := strings.Cut(s, ".")
	if !ok || len(id) != joinIDLen || len(secret) != joinSecretLen || !inAlphabet(id) || !inAlphabet(secret) {
		return "", "", errors.New("pki: malformed join token: " + joinFormatDesc)
	}
	return id, secret, nil
}

func inAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(joinAlphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

// HashSecret is the SHA-256 of a secret, the form in which join-token secrets and bearer tokens
// are stored.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// bearerPrefix starts every bearer token that NewBearerToken makes.
const bearerPrefix = "ebf_"

// NewBearerToken makes a bearer token for a person: "ebf_" and 32 random bytes in unpadded base64url.
func NewBearerToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pki: random: %w", err)
	}
	return bearerPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// StaticToken is one line of a tokens file: the SHA-256 of a bearer token and the person it stands for.
type StaticToken struct {
	Hash       [32]byte
	Name, Role string
}

// hashPrefix marks a tokens-file entry that holds the SHA-256 of a token instead of the token.
const hashPrefix = "sha256:"

// ParseTokensFile parses a tokens file. Each line is "<token>,<name>,<role>" or
// "sha256:<64 hex digits>,<name>,<role>", the second holding the SHA-256 of the token so that the
// file need not hold secrets. Blank lines and lines starting with # are skipped and whitespace
// around fields is trimmed. A token or a name may appear only once. Errors name the line and never
// repeat a token.
func ParseTokensFile(data []byte) ([]StaticToken, error) {
	var (
		out    []StaticToken
		byHash = map[[32]byte]int{}
		byName = map[string]int{}
	)
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ",")
		if len(fields) != 3 {
			return nil, fmt.Errorf("line %d: %d fields, want 3: <token>,<name>,<role>", n, len(fields))
		}
		tok, name, role := strings.TrimSpace(fields[0]), strings.TrimSpace(fields[1]), strings.TrimSpace(fields[2])
		var t StaticToken
		switch {
		case tok == "":
			return nil, fmt.Errorf("line %d: empty token", n)
		case strings.HasPrefix(tok, hashPrefix):
			h, err := hex.DecodeString(tok[len(hashPrefix):])
			if err != nil || len(h) != len(t.Hash) {
				return nil, fmt.Errorf("line %d: hash: want sha256: and 64 hex digits", n)
			}
			copy(t.Hash[:], h)
		case strings.ContainsAny(tok, " \t"):
			return nil, fmt.Errorf("line %d: token contains whitespace", n)
		default:
			t.Hash = sha256.Sum256([]byte(tok))
		}
		if err := validName(name); err != nil {
			return nil, fmt.Errorf("line %d: name %w", n, err)
		}
		if !ValidRole(role) {
			return nil, fmt.Errorf("line %d: role %q: want viewer, operator or admin", n, role)
		}
		if prev, ok := byHash[t.Hash]; ok {
			return nil, fmt.Errorf("line %d: the same token as line %d", n, prev)
		}
		if prev, ok := byName[name]; ok {
			return nil, fmt.Errorf("line %d: name %q already used on line %d", n, name, prev)
		}
		byHash[t.Hash], byName[name] = n, n
		t.Name, t.Role = name, role
		out = append(out, t)
	}
	return out, nil
}

// MatchToken finds the entry of tokens whose hash is that of token, comparing every entry in
// constant time.
func MatchToken(tokens []StaticToken, token string) (StaticToken, bool) {
	h := sha256.Sum256([]byte(token))
	var (
		found StaticToken
		ok    bool
	)
	for _, t := range tokens {
		if subtle.ConstantTimeCompare(t.Hash[:], h[:]) == 1 {
			found, ok = t, true
		}
	}
	return found, ok
}

// LoadOrCreateAdminToken reads the bearer token in dir/admin.token or, when the file is missing,
// makes one and writes it there (mode 0600; dir is created 0700 if need be). created reports
// whether it made the token.
func LoadOrCreateAdminToken(dir string) (token string, created bool, err error) {
	path := filepath.Join(dir, AdminTokenFile)
	data, err := os.ReadFile(path)
	if err == nil {
		token = string(bytes.TrimSpace(data))
		switch {
		case token == "":
			return "", false, fmt.Errorf("pki: %s is empty", path)
		case strings.ContainsAny(token, " \t\r\n"):
			return "", false, fmt.Errorf("pki: %s: want one token on one line", path)
		}
		return token, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("pki: %w", err)
	}
	if token, err = NewBearerToken(); err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("pki: %w", err)
	}
	if err := durable.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return token, true, nil
}
