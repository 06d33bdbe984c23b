package controller

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"

	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

// JWTConfig verifies OIDC-style bearer JWTs signed by an issuer's key.
type JWTConfig struct {
	// Issuer is the required "iss" claim; Audience the required "aud".
	Issuer, Audience string
	// Key is the issuer's public key (RSA, ECDSA or Ed25519).
	Key crypto.PublicKey
	// RoleClaim names the claim holding the role (viewer, operator, admin); "ebbflow_role" by
	// default. The person's name is "sub".
	RoleClaim string
}

// AuthConfig configures a Verifier.
type AuthConfig struct {
	// Identities is where agents' identity epochs are read (the replicated store).
	Identities Reader
	// Tokens are the accepted bearer tokens (the tokens file and the admin credential).
	Tokens []pki.StaticToken
	// JWT, when set, accepts JWTs from that issuer.
	JWT *JWTConfig
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Verifier authenticates callers by what they present: a client certificate issued by the
// group's CA (the TLS layer has verified its chain; here its identity is read, and an agent's
// is checked against its cluster's current identity epoch on every call, so a revocation or a
// re-join ends older certificates at once), or a bearer token (a static token, or a JWT).
type Verifier struct {
	ids    Reader
	tokens map[[32]byte]pki.StaticToken
	jwt    *JWTConfig
	parser *jwt.Parser
	now    func() time.Time
}

// NewVerifier checks cfg and builds the Verifier.
func NewVerifier(cfg AuthConfig) (*Verifier, error) {
	if cfg.Identities == nil {
		return nil, errors.New("AuthConfig.Identities is required")
	}
	v := &Verifier{ids: cfg.Identities, tokens: map[[32]byte]pki.StaticToken{}, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	for _, t := range cfg.Tokens {
		if _, dup := v.tokens[t.Hash]; dup {
			return nil, fmt.Errorf("token of %q is also given to %q", t.Name, v.tokens[t.Hash].Name)
		}
		v.tokens[t.Hash] = t
	}
	if j := cfg.JWT; j != nil {
		if j.Issuer == "" || j.Audience == "" || j.Key == nil {
			return nil, errors.New("JWT verification needs an issuer, an audience and the issuer's key")
		}
		jc := *j
		if jc.RoleClaim == "" {
			jc.RoleClaim = "ebbflow_role"
		}
		v.jwt = &jc
		v.parser = jwt.NewParser(
			jwt.WithIssuer(jc.Issuer), jwt.WithAudience(jc.Audience), jwt.WithExpirationRequired(),
			jwt.WithLeeway(30*time.Second), jwt.WithTimeFunc(v.now),
			jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}),
		)
	}
	return v, nil
}

var errBadCredentials = errors.New("credentials not accepted")

// Identify implements Authenticator.
func (v *Verifier) Identify(ctx context.Context, _ connect.Peer, h http.Header) (Identity, error) {
	if cert := clientCertOf(ctx); cert != nil {
		return v.fromCertificate(ctx, cert)
	}
	auth := h.Get("Authorization")
	if auth == "" {
		return Identity{Actor: anonymous, Method: "none"}, nil
	}
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Identity{}, unauthenticated("the Authorization header must be \"Bearer <token>\"")
	}
	if t, ok := v.tokens[sha256.Sum256([]byte(tok))]; ok {
		return person(t.Name, t.Role, "token")
	}
	if v.jwt != nil && strings.Count(tok, ".") == 2 {
		return v.fromJWT(tok)
	}
	return Identity{}, unauthenticated("bearer token not accepted")
}

func (v *Verifier) fromCertificate(ctx context.Context, cert *x509.Certificate) (Identity, error) {
	if v.now().After(cert.NotAfter) {
		return Identity{}, unauthenticated("client certificate expired at " + cert.NotAfter.UTC().Format(time.RFC3339))
	}
	pid, err := pki.IdentityOf(cert)
	if err != nil {
		return Identity{}, unauthenticated("client certificate: " + err.Error())
	}
	switch pid.Kind {
	case pki.KindPerson:
		return person(pid.Name, pid.Role, "certificate")
	case pki.KindNode:
		return Identity{Kind: ebbflowv1.IdentityKind_IDENTITY_KIND_NODE, Name: pid.Name, Method: "certificate",
			Actor: "node:" + pid.Name, Peer: true}, nil
	case pki.KindAgent:
		var ci *clusterIdentity
		err := v.ids.View(ctx, store.Stale, func(tx *store.Tx) error {
			c, ok, err := tx.ClusterIdentity(pid.Name)
			if ok {
				ci = &clusterIdentity{epoch: c.GetEpoch(), revoked: c.GetRevoked()}
			}
			return err
		})
		if err != nil {
			return Identity{}, connect.NewError(connect.CodeUnavailable, fmt.Errorf("reading the identity of cluster %q: %w", pid.Name, err))
		}
		// Certificates are issued only once their epoch is committed: a certificate newer
		// than this node's replica means the replica lags (a follower right after a join), not
		// that the certificate is bad.
		switch {
		case ci == nil || ci.epoch < pid.Epoch:
			return Identity{}, connect.NewError(connect.CodeUnavailable,
				fmt.Errorf("this controller node has not caught up with the identity of cluster %q yet; retry", pid.Name))
		case ci.revoked:
			return Identity{}, unauthenticated(fmt.Sprintf("the identity of cluster %q was revoked; join again with a new token", pid.Name))
		case ci.epoch != pid.Epoch:
			return Identity{}, unauthenticated(fmt.Sprintf("certificate of cluster %q is from identity epoch %d, superseded by epoch %d", pid.Name, pid.Epoch, ci.epoch))
		}
		return Identity{Kind: ebbflowv1.IdentityKind_IDENTITY_KIND_AGENT, Name: pid.Name, Method: "certificate",
			Actor: clip("agent:"+pid.Name, 128)}, nil
	}
	return Identity{}, unauthenticated("client certificate carries no Ebbflow identity")
}

type clusterIdentity struct {
	epoch   uint64
	revoked bool
}

func (v *Verifier) fromJWT(tok string) (Identity, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) { return v.jwt.Key, nil })
	if err != nil {
		return Identity{}, unauthenticated("JWT not accepted: " + err.Error())
	}
	sub, _ := claims.GetSubject()
	if sub == "" {
		return Identity{}, unauthenticated("JWT has no sub claim")
	}
	role, _ := claims[v.jwt.RoleClaim].(string)
	if !pki.ValidRole(role) {
		return Identity{}, connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("JWT claim %q is %q: want viewer, operator or admin", v.jwt.RoleClaim, role))
	}
	return person(sub, role, "jwt")
}

func person(name, role, method string) (Identity, error) {
	r, ok := roles[role]
	if !ok {
		return Identity{}, unauthenticated(fmt.Sprintf("role %q of %q: want viewer, operator or admin", role, name))
	}
	return Identity{Kind: ebbflowv1.IdentityKind_IDENTITY_KIND_PERSON, Name: clip(name, 128), Role: r, Method: method,
		Actor: clip(name, 128)}, nil
}

var roles = map[string]ebbflowv1.Role{
	"viewer":   ebbflowv1.Role_ROLE_VIEWER,
	"operator": ebbflowv1.Role_ROLE_OPERATOR,
	"admin":    ebbflowv1.Role_ROLE_ADMIN,
}

func unauthenticated(msg string) error {
	return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: %s", errBadCredentials, msg))
}

type clientCertKey struct{}

// clientCertOf is the verified client certificate of the connection the call came on.
func clientCertOf(ctx context.Context) *x509.Certificate {
	c, _ := ctx.Value(clientCertKey{}).(*x509.Certificate)
	return c
}

// withClientCertificates puts the verified client certificate of a TLS connection (its chain
// was checked against the group's CA during the handshake) into the request's context.
func withClientCertificates(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			r = r.WithContext(context.WithValue(r.Context(), clientCertKey{}, r.TLS.VerifiedChains[0][0]))
		}
		next.ServeHTTP(w, r)
	})
}
