package pki

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
)

func certWithURIs(t *testing.T, uris ...string) *x509.Certificate {
	t.Helper()
	c := &x509.Certificate{}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", s, err)
		}
		c.URIs = append(c.URIs, u)
	}
	return c
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindAgent: "agent", KindNode: "node", KindPerson: "person", 0: "Kind(0)", 7: "Kind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestIdentityURI(t *testing.T) {
	tests := []struct {
		id   Identity
		want string
	}{
		{Identity{Kind: KindAgent, Name: "prod-eu", Epoch: 12}, "spiffe://ebbflow/cluster/prod-eu/epoch/12"},
		{Identity{Kind: KindNode, Name: "ctrl-0"}, "spiffe://ebbflow/node/ctrl-0"},
		{Identity{Kind: KindPerson, Name: "alice", Role: RoleAdmin}, "spiffe://ebbflow/user/alice/role/admin"},
		// An invalid name is escaped, so it cannot add path segments.
		{Identity{Kind: KindNode, Name: "a/b c"}, "spiffe://ebbflow/node/a%2Fb%20c"},
	}
	for _, tt := range tests {
		if got := tt.id.URI().String(); got != tt.want {
			t.Errorf("%+v: URI %q, want %q", tt.id, got, tt.want)
		}
	}
}

func TestIdentityOf(t *testing.T) {
	long := strings.Repeat("a", 253)
	tests := []struct {
		name    string
		uris    []string
		want    Identity
		wantErr string
	}{
		{"agent", []string{"spiffe://ebbflow/cluster/prod-eu/epoch/3"}, Identity{Kind: KindAgent, Name: "prod-eu", Epoch: 3}, ""},
		{"agent epoch 0", []string{"spiffe://ebbflow/cluster/c1/epoch/0"}, Identity{Kind: KindAgent, Name: "c1"}, ""},
		{"agent max epoch", []string{"spiffe://ebbflow/cluster/c1/epoch/18446744073709551615"}, Identity{Kind: KindAgent, Name: "c1", Epoch: 1<<64 - 1}, ""},
		{"node", []string{"spiffe://ebbflow/node/Ctrl_0.a-b"}, Identity{Kind: KindNode, Name: "Ctrl_0.a-b"}, ""},
		{"node 253", []string{"spiffe://ebbflow/node/" + long}, Identity{Kind: KindNode, Name: long}, ""},
		{"viewer", []string{"spiffe://ebbflow/user/bob/role/viewer"}, Identity{Kind: KindPerson, Name: "bob", Role: RoleViewer}, ""},
		{"operator", []string{"spiffe://ebbflow/user/bob/role/operator"}, Identity{Kind: KindPerson, Name: "bob", Role: RoleOperator}, ""},
		{"admin", []string{"spiffe://ebbflow/user/bob/role/admin"}, Identity{Kind: KindPerson, Name: "bob", Role: RoleAdmin}, ""},

		{"no URI", nil, Identity{}, "no URI SAN"},
		{"two URIs", []string{"spiffe://ebbflow/node/a", "spiffe://ebbflow/node/b"}, Identity{}, "2 URI SANs"},
		{"ours and another", []string{"spiffe://ebbflow/node/a", "https://example.com/"}, Identity{}, "2 URI SANs"},
		{"https", []string{"https://ebbflow/node/a"}, Identity{}, `scheme is "https"`},
		{"opaque", []string{"spiffe:ebbflow/node/a"}, Identity{}, "want spiffe://ebbflow/"},
		{"other trust domain", []string{"spiffe://example.org/node/a"}, Identity{}, `trust domain is "example.org"`},
		{"upper-case trust domain", []string{"spiffe://EBBFLOW/node/a"}, Identity{}, "trust domain"},
		{"port", []string{"spiffe://ebbflow:443/node/a"}, Identity{}, "trust domain"},
		{"user info", []string{"spiffe://u@ebbflow/node/a"}, Identity{}, "user information"},
		{"query", []string{"spiffe://ebbflow/node/a?x=1"}, Identity{}, "query"},
		{"fragment", []string{"spiffe://ebbflow/node/a#x"}, Identity{}, "fragment"},
		{"no path", []string{"spiffe://ebbflow"}, Identity{}, "no path"},
		{"root path", []string{"spiffe://ebbflow/"}, Identity{}, "no path"},
		{"unknown kind", []string{"spiffe://ebbflow/widget/a"}, Identity{}, `starts with "widget"`},
		{"double slash", []string{"spiffe://ebbflow//node/a"}, Identity{}, `starts with ""`},
		{"trailing slash", []string{"spiffe://ebbflow/node/a/"}, Identity{}, "want /node/<id>"},
		{"extra segment", []string{"spiffe://ebbflow/node/a/b"}, Identity{}, "want /node/<id>"},
		{"empty name", []string{"spiffe://ebbflow/node/"}, Identity{}, "name is empty"},
		{"dot-dot name", []string{"spiffe://ebbflow/node/.."}, Identity{}, `".." is not allowed`},
		{"space in name", []string{"spiffe://ebbflow/node/a%20b"}, Identity{}, "character ' ' not allowed"},
		{"escaped slash", []string{"spiffe://ebbflow/node/a%2Fb"}, Identity{}, "character '/' not allowed"},
		{"escaped letter", []string{"spiffe://ebbflow/node/%61"}, Identity{}, "percent-encoded"},
		{"unicode name", []string{"spiffe://ebbflow/node/caf%C3%A9"}, Identity{}, "not allowed"},
		{"name too long", []string{"spiffe://ebbflow/node/" + long + "a"}, Identity{}, "254 characters"},
		{"bad cluster name", []string{"spiffe://ebbflow/cluster/a:b/epoch/1"}, Identity{}, "character ':'"},
		{"no epoch", []string{"spiffe://ebbflow/cluster/c1"}, Identity{}, "want /cluster/<cluster>/epoch/<n>"},
		{"misspelt epoch", []string{"spiffe://ebbflow/cluster/c1/epoc/1"}, Identity{}, "want /cluster/<cluster>/epoch/<n>"},
		{"non-numeric epoch", []string{"spiffe://ebbflow/cluster/c1/epoch/one"}, Identity{}, `epoch "one"`},
		{"negative epoch", []string{"spiffe://ebbflow/cluster/c1/epoch/-1"}, Identity{}, `epoch "-1"`},
		{"signed epoch", []string{"spiffe://ebbflow/cluster/c1/epoch/+1"}, Identity{}, `epoch "+1"`},
		{"leading zero", []string{"spiffe://ebbflow/cluster/c1/epoch/01"}, Identity{}, `epoch "01"`},
		{"epoch overflow", []string{"spiffe://ebbflow/cluster/c1/epoch/18446744073709551616"}, Identity{}, "epoch"},
		{"empty epoch", []string{"spiffe://ebbflow/cluster/c1/epoch/"}, Identity{}, `epoch ""`},
		{"bad role", []string{"spiffe://ebbflow/user/bob/role/root"}, Identity{}, `role "root": want viewer, operator or admin`},
		{"role case", []string{"spiffe://ebbflow/user/bob/role/Admin"}, Identity{}, `role "Admin"`},
		{"no role", []string{"spiffe://ebbflow/user/bob"}, Identity{}, "want /user/<name>/role/<role>"},
		{"misspelt role", []string{"spiffe://ebbflow/user/bob/roles/admin"}, Identity{}, "want /user/<name>/role/<role>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IdentityOf(certWithURIs(t, tt.uris...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, err %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if s := got.URI().String(); s != tt.uris[0] {
				t.Errorf("URI() = %q, want %q", s, tt.uris[0])
			}
			if p, err := ParseIdentity(tt.uris[0]); err != nil || p != got {
				t.Errorf("ParseIdentity = %+v, %v", p, err)
			}
		})
	}
	if _, err := IdentityOf(nil); err == nil {
		t.Error("IdentityOf(nil) succeeded")
	}
}

func TestIdentityValidate(t *testing.T) {
	tests := []struct {
		id      Identity
		wantErr string
	}{
		{Identity{Kind: KindAgent, Name: "c1", Epoch: 4}, ""},
		{Identity{Kind: KindNode, Name: "n1"}, ""},
		{Identity{Kind: KindPerson, Name: "p", Role: RoleViewer}, ""},
		{Identity{Name: "n1"}, "unknown kind"},
		{Identity{Kind: KindNode}, "name is empty"},
		{Identity{Kind: KindNode, Name: "n1", Role: RoleAdmin}, "has no role"},
		{Identity{Kind: KindNode, Name: "n1", Epoch: 2}, "has no epoch"},
		{Identity{Kind: KindPerson, Name: "p", Epoch: 2, Role: RoleAdmin}, "has no epoch"},
		{Identity{Kind: KindPerson, Name: "p"}, `role ""`},
		{Identity{Kind: KindAgent, Name: "c 1"}, "not allowed"},
	}
	for _, tt := range tests {
		err := tt.id.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v: err %v, want %q", tt.id, err, tt.wantErr)
		}
	}
}

func TestValidRole(t *testing.T) {
	for r, want := range map[string]bool{"viewer": true, "operator": true, "admin": true, "": false, "root": false, "Admin": false, " admin": false} {
		if ValidRole(r) != want {
			t.Errorf("ValidRole(%q) = %v", r, !want)
		}
	}
}
