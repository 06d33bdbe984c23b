package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// actorHeader names the person or program behind a request when authentication is off; it is
// taken as given and recorded with every write (fleetctl sends the local user name).
const actorHeader = "Ebbflow-Actor"

// forwardedForHeader carries the original caller's address on a call one controller node
// forwarded to another. Only nodes set it: on a call that does not come from a node of the
// group it is removed before anything reads it.
const forwardedForHeader = "Ebbflow-Forwarded-For"

var errInternal = errors.New("internal error; see the controller's log")

// Identity is who is calling, as this node established it.
type Identity struct {
	// Kind is a person, an agent or a node; unspecified for a caller without credentials.
	Kind ebbflowv1.IdentityKind
	// Name is the person's name, the agent's cluster or the node's id.
	Name string
	// Role is a person's role.
	Role ebbflowv1.Role
	// Method is how the caller was authenticated: "token", "jwt", "certificate" or "none".
	Method string
	// Actor names the caller in audit records and in the objects it changes.
	Actor string
	// Peer is true when the caller is another controller node of this group: only then are
	// forwardedForHeader and forwardedIdentityHeader believed.
	Peer bool
	// Unrestricted is true when authentication is off (an insecure development controller):
	// every call is allowed, agent calls for any cluster.
	Unrestricted bool
}

// Authenticator establishes who is calling. It is the one place the API asks: the
// interceptor calls it for every request and puts the result in the context (identityOf reads
// it from there). A caller without credentials is an Identity of no kind, and authorization
// decides; credentials that are presented but not accepted are an error (Unauthenticated).
// The Verifier checks client certificates, bearer tokens and JWTs; the insecure
// headerAuthenticator trusts the Ebbflow-Actor header and allows everything.
type Authenticator interface {
	Identify(ctx context.Context, peer connect.Peer, h http.Header) (Identity, error)
}

// headerAuthenticator is authentication turned off: every caller may do everything, named by
// the Ebbflow-Actor header as given. A call is a node's when it carries forwardedHeader and
// comes from the host of a member of the Raft configuration.
type headerAuthenticator struct {
	members Membership
}

func (a headerAuthenticator) Identify(ctx context.Context, peer connect.Peer, h http.Header) (Identity, error) {
	id := Identity{Kind: ebbflowv1.IdentityKind_IDENTITY_KIND_PERSON, Name: anonymous, Role: ebbflowv1.Role_ROLE_ADMIN,
		Method: "none", Actor: anonymous, Unrestricted: true}
	if v := h.Get(actorHeader); v != "" {
		id.Actor = clip(v, 128)
		id.Name = id.Actor
	}
	if h.Get(forwardedHeader) != "" {
		id.Peer = a.fromMember(ctx, peer.Addr)
	}
	return id, nil
}

// fromMember reports whether addr's host is the host of a member's Raft or API address.
func (a headerAuthenticator) fromMember(ctx context.Context, addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	for _, m := range a.members.Status().Members {
		for _, ma := range []string{m.RaftAddress, m.APIAddress} {
			mh, _, err := net.SplitHostPort(ma)
			if err != nil {
				continue
			}
			if mh == host {
				return true
			}
			if net.ParseIP(mh) != nil || ip == nil {
				continue
			}
			// A member known by DNS name (a StatefulSet): resolve it, briefly.
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			ips, _ := net.DefaultResolver.LookupIPAddr(rctx, mh)
			cancel()
			for _, x := range ips {
				if x.IP.Equal(ip) {
					return true
				}
			}
		}
	}
	return false
}

type identityKey struct{}

func withIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// identityOf returns the caller's identity the interceptor established.
func identityOf(ctx context.Context) Identity {
	if id, ok := ctx.Value(identityKey{}).(Identity); ok {
		return id
	}
	return Identity{Actor: anonymous, Method: "none"}
}

// anonymous is the actor of a call without credentials.
const anonymous = "anonymous"

// actorOf returns who made the request, "anonymous" when unnamed.
func actorOf(ctx context.Context) string {
	return identityOf(ctx).Actor
}

// clip cuts s to at most n bytes of valid UTF-8, so what a caller sends can always be stored
// (a proto string must be valid UTF-8).
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// forwardedIdentityHeader carries, on a call a node forwards, the identity that node
// established for the original caller; believed only from a node of the group.
const forwardedIdentityHeader = "Ebbflow-Forwarded-Identity"

func encodeIdentity(id Identity) string {
	return url.Values{
		"kind": {id.Kind.String()}, "name": {id.Name}, "role": {id.Role.String()},
		"method": {id.Method}, "actor": {id.Actor},
	}.Encode()
}

func decodeIdentity(s string) (Identity, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return Identity{}, fmt.Errorf("%s: %w", forwardedIdentityHeader, err)
	}
	kind, ok := ebbflowv1.IdentityKind_value[v.Get("kind")]
	if !ok {
		return Identity{}, fmt.Errorf("%s: unknown kind %q", forwardedIdentityHeader, v.Get("kind"))
	}
	role, ok := ebbflowv1.Role_value[v.Get("role")]
	if !ok {
		return Identity{}, fmt.Errorf("%s: unknown role %q", forwardedIdentityHeader, v.Get("role"))
	}
	return Identity{Kind: ebbflowv1.IdentityKind(kind), Name: clip(v.Get("name"), 253), Role: ebbflowv1.Role(role),
		Method: clip(v.Get("method"), 32), Actor: clip(v.Get("actor"), 128)}, nil
}
