package controller

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
)

// actorHeader names the person or program behind a request. Until authentication lands it is
// taken as given and recorded with every write (fleetctl sends the local user name).
const actorHeader = "Ebbflow-Actor"

// forwardedForHeader carries the original caller's address on a call one controller node
// forwarded to another. Only nodes set it: on a call that does not come from a node of the
// group it is removed before anything reads it.
const forwardedForHeader = "Ebbflow-Forwarded-For"

var errInternal = errors.New("internal error; see the controller's log")

// Identity is who is calling, as this node established it.
type Identity struct {
	// Actor names the caller in audit records and in the objects it changes.
	Actor string
	// Peer is true when the caller is another controller node of this group forwarding a call:
	// only then is forwardedForHeader believed.
	Peer bool
}

// Authenticator establishes who is calling. It is the one place the API asks: the
// interceptor calls it for every request and puts the result in the context (actorOf reads
// it from there). Today's headerAuthenticator takes the unauthenticated Ebbflow-Actor header
// as given; the authentication of the security issue (mTLS identities for agents and nodes,
// bearer tokens, JWTs, client certificates) replaces it with one that verifies the caller.
type Authenticator interface {
	Identify(ctx context.Context, peer connect.Peer, h http.Header) Identity
}

// headerAuthenticator trusts the Ebbflow-Actor header, and treats a call as a node's when it
// carries forwardedHeader and comes from the host of a member of the Raft configuration.
type headerAuthenticator struct {
	members Membership
}

func (a headerAuthenticator) Identify(ctx context.Context, peer connect.Peer, h http.Header) Identity {
	id := Identity{Actor: "anonymous"}
	if v := h.Get(actorHeader); v != "" {
		id.Actor = clip(v, 128)
	}
	if h.Get(forwardedHeader) != "" {
		id.Peer = a.fromMember(ctx, peer.Addr)
	}
	return id
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
	return Identity{Actor: "anonymous"}
}

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
