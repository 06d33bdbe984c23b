package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// The trust domain of every Ebbflow identity: its URIs are spiffe://ebbflow/...
const (
	uriScheme   = "spiffe"
	trustDomain = "ebbflow"
)

// maxNameLen is the longest name an identity may carry.
const maxNameLen = 253

// Kind is the kind of party an identity names.
type Kind int

// Kinds of identity.
const (
	KindAgent  Kind = iota + 1 // an agent of a cluster: spiffe://ebbflow/cluster/<cluster>/epoch/<n>
	KindNode                   // a controller node: spiffe://ebbflow/node/<id>
	KindPerson                 // a person with a role: spiffe://ebbflow/user/<name>/role/<role>
)

func (k Kind) String() string {
	switch k {
	case KindAgent:
		return "agent"
	case KindNode:
		return "node"
	case KindPerson:
		return "person"
	default:
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Roles a person may hold.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// ValidRole reports whether r is viewer, operator or admin.
func ValidRole(r string) bool {
	return r == RoleViewer || r == RoleOperator || r == RoleAdmin
}

// Identity is who a certificate speaks for. It travels as the certificate's one URI SAN.
type Identity struct {
	Kind  Kind
	Name  string // cluster, node id, or person's name
	Role  string // person only: viewer, operator or admin
	Epoch uint64 // agent only
}

// URI is the identity as a spiffe://ebbflow/ URI. It does not validate the identity; see Validate.
func (id Identity) URI() *url.URL {
	var segs []string
	switch id.Kind {
	case KindAgent:
		segs = []string{"cluster", id.Name, "epoch", strconv.FormatUint(id.Epoch, 10)}
	case KindNode:
		segs = []string{"node", id.Name}
	case KindPerson:
		segs = []string{"user", id.Name, "role", id.Role}
	default:
		segs = []string{"unknown", id.Name}
	}
	esc := make([]string, len(segs))
	for i, s := range segs {
		esc[i] = url.PathEscape(s)
	}
	u := &url.URL{Scheme: uriScheme, Host: trustDomain, Path: "/" + strings.Join(segs, "/")}
	if raw := "/" + strings.Join(esc, "/"); raw != u.Path {
		u.RawPath = raw
	}
	return u
}

// String is the identity's URI.
func (id Identity) String() string { return id.URI().String() }

// Validate reports what, if anything, is wrong with id.
func (id Identity) Validate() error {
	switch id.Kind {
	case KindAgent, KindNode, KindPerson:
	default:
		return fmt.Errorf("identity: unknown kind %v", id.Kind)
	}
	if err := validName(id.Name); err != nil {
		return fmt.Errorf("identity: %v name %w", id.Kind, err)
	}
	if id.Kind == KindPerson {
		if !ValidRole(id.Role) {
			return fmt.Errorf("identity: role %q: want viewer, operator or admin", id.Role)
		}
	} else if id.Role != "" {
		return fmt.Errorf("identity: a %v has no role, got %q", id.Kind, id.Role)
	}
	if id.Kind != KindAgent && id.Epoch != 0 {
		return fmt.Errorf("identity: a %v has no epoch, got %d", id.Kind, id.Epoch)
	}
	return nil
}

// validName checks a name: 1 to 253 characters of a-z, A-Z, 0-9, '.', '_' or '-', and not "." or "..".
func validName(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("is %d characters long, want at most %d", len(s), maxNameLen)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%q is not allowed", s)
	}
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '.', r == '_', r == '-':
		default:
			return fmt.Errorf("%q: character %q not allowed, want a-z, A-Z, 0-9, '.', '_' or '-'", s, r)
		}
	}
	return nil
}

// IdentityOf reads the identity of a leaf certificate, which the caller has verified. The certificate
// must have exactly one URI SAN, a well-formed spiffe://ebbflow/ URI in canonical form.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, errors.New("identity: no certificate")
	}
	switch len(cert.URIs) {
	case 0:
		return Identity{}, errors.New("identity: certificate has no URI SAN, want one spiffe://ebbflow/ URI")
	case 1:
	default:
		return Identity{}, fmt.Errorf("identity: certificate has %d URI SANs, want exactly one", len(cert.URIs))
	}
	return parseIdentityURI(cert.URIs[0])
}

// ParseIdentity parses an identity URI such as spiffe://ebbflow/node/n1, with the checks of IdentityOf.
func ParseIdentity(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	return parseIdentityURI(u)
}

func parseIdentityURI(u *url.URL) (Identity, error) {
	fail := func(format string, a ...any) (Identity, error) {
		return Identity{}, fmt.Errorf("identity: URI %q: %s", u.Redacted(), fmt.Sprintf(format, a...))
	}
	switch {
	case u.Scheme != uriScheme:
		return fail("scheme is %q, want %q", u.Scheme, uriScheme)
	case u.Opaque != "":
		return fail("want spiffe://%s/...", trustDomain)
	case u.User != nil:
		return fail("has user information")
	case u.Host != trustDomain:
		return fail("trust domain is %q, want %q", u.Host, trustDomain)
	case u.RawQuery != "" || u.ForceQuery:
		return fail("has a query")
	case u.Fragment != "" || u.RawFragment != "":
		return fail("has a fragment")
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") || len(p) == 1 {
		return fail("has no path")
	}
	esc := strings.Split(p[1:], "/")
	segs := make([]string, len(esc))
	for i, e := range esc {
		s, err := url.PathUnescape(e)
		if err != nil {
			return fail("bad escaping: %v", err)
		}
		segs[i] = s
	}

	var id Identity
	switch segs[0] {
	case "cluster":
		if len(segs) != 4 || segs[2] != "epoch" {
			return fail("want /cluster/<cluster>/epoch/<n>")
		}
		n, err := strconv.ParseUint(segs[3], 10, 64)
		if err != nil || (len(segs[3]) > 1 && segs[3][0] == '0') {
			return fail("epoch %q is not a decimal number without leading zeros", segs[3])
		}
		id = Identity{Kind: KindAgent, Name: segs[1], Epoch: n}
	case "node":
		if len(segs) != 2 {
			return fail("want /node/<id>")
		}
		id = Identity{Kind: KindNode, Name: segs[1]}
	case "user":
		if len(segs) != 4 || segs[2] != "role" {
			return fail("want /user/<name>/role/<role>")
		}
		id = Identity{Kind: KindPerson, Name: segs[1], Role: segs[3]}
	default:
		return fail("path starts with %q, want cluster, node or user", segs[0])
	}
	if err := validName(id.Name); err != nil {
		return fail("%v name %v", id.Kind, err)
	}
	if id.Kind == KindPerson && !ValidRole(id.Role) {
		return fail("role %q: want viewer, operator or admin", id.Role)
	}
	// Names and roles hold no character that needs escaping, so a canonical URI has none.
	for i, e := range esc {
		if e != segs[i] {
			return fail("segment %q is percent-encoded", e)
		}
	}
	if want := id.URI().String(); u.String() != want {
		return fail("not in canonical form %q", want)
	}
	return id, nil
}
