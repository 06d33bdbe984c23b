package controller_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/golang-jwt/jwt/v5"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

const (
	testIssuer   = "https://idp.example.test"
	testAudience = "ebbflow-controller"
)

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwtClaims are the claims of a good token for carol, an operator, changed by edit.
func jwtClaims(edit func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	cl := jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "carol",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"ebbflow_role": "operator",
	}
	if edit != nil {
		edit(cl)
	}
	return cl
}

func signJWT(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return s
}

// authorization sends the Authorization header exactly as given.
func authorization(v string) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", v)
			return next(ctx, req)
		}
	}))
}

func whoAmI(hc *http.Client, url string, opts ...connect.ClientOption) (*ebbflowv1.WhoAmIResponse, error) {
	res, err := c.NewAccessServiceClient(hc, url, opts...).WhoAmI(context.Background(), connect.NewRequest(&ebbflowv1.WhoAmIRequest{}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func wantWhoAmI(t *testing.T, what string, got *ebbflowv1.WhoAmIResponse, err error, kind ebbflowv1.IdentityKind, name string, role ebbflowv1.Role, method string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: WhoAmI: %v", what, err)
	}
	if got.GetKind() != kind || got.GetName() != name || got.GetRole() != role || got.GetMethod() != method {
		t.Fatalf("%s: WhoAmI says %v %q %v %q, want %v %q %v %q", what,
			got.GetKind(), got.GetName(), got.GetRole(), got.GetMethod(), kind, name, role, method)
	}
}

// viewerCall is a viewer RPC (ListProfiles); operatorCall an operator RPC (pausing a rollout
// that does not exist: NotFound once authorized); adminCall an admin RPC (creating a profile).
func viewerCall(hc *http.Client, url string, opts ...connect.ClientOption) error {
	_, err := c.NewProfileServiceClient(hc, url, opts...).ListProfiles(context.Background(), connect.NewRequest(&ebbflowv1.ListProfilesRequest{}))
	return err
}

func operatorCall(hc *http.Client, url string, opts ...connect.ClientOption) error {
	_, err := c.NewRolloutServiceClient(hc, url, opts...).PauseRollout(context.Background(), connect.NewRequest(&ebbflowv1.PauseRolloutRequest{Id: "no-such-rollout"}))
	return err
}

func adminCall(hc *http.Client, url, profile string, opts ...connect.ClientOption) error {
	_, err := c.NewProfileServiceClient(hc, url, opts...).CreateProfile(context.Background(), connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: profile, Spec: minimalSpec()}))
	return err
}

// wantErr checks err's code and that its message says why.
func wantErr(t *testing.T, what string, err error, code connect.Code, reason string) {
	t.Helper()
	wantCode(t, what, err, code)
	if err != nil && reason != "" && !strings.Contains(err.Error(), reason) {
		t.Errorf("%s: %v does not say %q", what, err, reason)
	}
}

// JWTs of the configured issuer authenticate people; everything about a token that is not
// exactly right refuses it.
func TestJWTAuthentication(t *testing.T) {
	key, other := newECKey(t), newECKey(t)
	sec := controllertest.NewSecurity(t)
	sec.JWT = &controller.JWTConfig{Issuer: testIssuer, Audience: testAudience, Key: &key.PublicKey}
	// Every case fails authentication from one address on purpose.
	noFailureLimit := func(cfg *controller.Config) { cfg.FailedAuthRateLimit = controller.RateLimit{Rate: -1} }
	url := controllertest.StartSecureCluster(t, 1, sec, noFailureLimit)[0].URL
	hc := sec.Client(nil)

	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	es256 := func(edit func(jwt.MapClaims)) string { return signJWT(t, jwt.SigningMethodES256, key, jwtClaims(edit)) }
	good := es256(nil)
	parts := strings.Split(good, ".")
	// The payload of a token for an admin under the signature of the operator's token.
	adminPayload := strings.Split(es256(func(m jwt.MapClaims) { m["ebbflow_role"] = "admin" }), ".")[1]

	for _, tc := range []struct {
		name   string
		token  string
		code   connect.Code // 0: accepted
		reason string
	}{
		{name: "valid", token: good},
		{name: "audience list holding ours", token: es256(func(m jwt.MapClaims) { m["aud"] = []string{"someone-else", testAudience} })},
		{name: "wrong issuer", token: es256(func(m jwt.MapClaims) { m["iss"] = "https://evil.example.test" }), code: connect.CodeUnauthenticated, reason: "issuer"},
		{name: "wrong audience", token: es256(func(m jwt.MapClaims) { m["aud"] = "another-service" }), code: connect.CodeUnauthenticated, reason: "audience"},
		{name: "no audience", token: es256(func(m jwt.MapClaims) { delete(m, "aud") }), code: connect.CodeUnauthenticated, reason: "aud"},
		{name: "expired", token: es256(func(m jwt.MapClaims) { m["exp"] = time.Now().Add(-time.Hour).Unix() }), code: connect.CodeUnauthenticated, reason: "expired"},
		{name: "no exp", token: es256(func(m jwt.MapClaims) { delete(m, "exp") }), code: connect.CodeUnauthenticated, reason: "exp"},
		{name: "not valid yet", token: es256(func(m jwt.MapClaims) { m["nbf"] = time.Now().Add(time.Hour).Unix() }), code: connect.CodeUnauthenticated, reason: "not valid yet"},
		{name: "signed by another key", token: signJWT(t, jwt.SigningMethodES256, other, jwtClaims(nil)), code: connect.CodeUnauthenticated, reason: "signature"},
		{name: "payload swapped under a valid signature", token: parts[0] + "." + adminPayload + "." + parts[2], code: connect.CodeUnauthenticated, reason: "signature"},
		{name: "alg none", token: signJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwtClaims(nil)), code: connect.CodeUnauthenticated, reason: "none"},
		{name: "HS256 keyed with the public key PEM", token: signJWT(t, jwt.SigningMethodHS256, pubPEM, jwtClaims(nil)), code: connect.CodeUnauthenticated, reason: "HS256"},
		{name: "HS256 keyed with the public key DER", token: signJWT(t, jwt.SigningMethodHS256, pubDER, jwtClaims(nil)), code: connect.CodeUnauthenticated, reason: "HS256"},
		{name: "missing sub", token: es256(func(m jwt.MapClaims) { delete(m, "sub") }), code: connect.CodeUnauthenticated, reason: "sub"},
		{name: "missing role", token: es256(func(m jwt.MapClaims) { delete(m, "ebbflow_role") }), code: connect.CodePermissionDenied, reason: "ebbflow_role"},
		{name: "unknown role", token: es256(func(m jwt.MapClaims) { m["ebbflow_role"] = "root" }), code: connect.CodePermissionDenied, reason: "root"},
		{name: "role of the wrong type", token: es256(func(m jwt.MapClaims) { m["ebbflow_role"] = []string{"admin"} }), code: connect.CodePermissionDenied, reason: "ebbflow_role"},
		{name: "role in upper case", token: es256(func(m jwt.MapClaims) { m["ebbflow_role"] = "ADMIN" }), code: connect.CodePermissionDenied, reason: "ADMIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := controllertest.BearerToken(tc.token)
			who, err := whoAmI(hc, url, tok)
			if tc.code == 0 {
				wantWhoAmI(t, tc.name, who, err, ebbflowv1.IdentityKind_IDENTITY_KIND_PERSON, "carol", ebbflowv1.Role_ROLE_OPERATOR, "jwt")
				if err := viewerCall(hc, url, tok); err != nil {
					t.Errorf("viewer RPC: %v", err)
				}
				wantCode(t, "operator RPC (allowed, the rollout does not exist)", operatorCall(hc, url, tok), connect.CodeNotFound)
				wantCode(t, "admin RPC", adminCall(hc, url, "by-carol", tok), connect.CodePermissionDenied)
				return
			}
			wantErr(t, "WhoAmI", err, tc.code, tc.reason)
			wantErr(t, "viewer RPC", viewerCall(hc, url, tok), tc.code, tc.reason)
			wantErr(t, "operator RPC", operatorCall(hc, url, tok), tc.code, tc.reason)
		})
	}
}

// A person's client certificate from the group's CA authenticates its holder with its role; a
// certificate of another CA gets nowhere.
func TestPersonCertificates(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	url := controllertest.StartSecureCluster(t, 1, sec, nil)[0].URL
	certPEM, keyPEM, err := sec.CA.IssuePerson("alice", "viewer", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	hc := sec.Client(&alice)
	who, err := whoAmI(hc, url)
	wantWhoAmI(t, "alice's certificate", who, err, ebbflowv1.IdentityKind_IDENTITY_KIND_PERSON, "alice", ebbflowv1.Role_ROLE_VIEWER, "certificate")
	if err := viewerCall(hc, url); err != nil {
		t.Errorf("viewer RPC with alice's certificate: %v", err)
	}
	wantCode(t, "operator RPC with alice's certificate", operatorCall(hc, url), connect.CodePermissionDenied)
	wantCode(t, "admin RPC with alice's certificate", adminCall(hc, url, "by-alice"), connect.CodePermissionDenied)

	otherCA, _, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err = otherCA.IssuePerson("mallory", "admin", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	mc := sec.Client(&mallory)
	if who, err := whoAmI(mc, url); err == nil {
		t.Fatalf("a certificate of another CA was accepted: %v", who)
	}
	err = adminCall(mc, url, "by-mallory")
	if err == nil || connect.CodeOf(err) == connect.CodePermissionDenied {
		// PermissionDenied would mean the call got past the TLS layer and authentication.
		t.Fatalf("admin RPC with another CA's certificate: %v, want it refused before authorization", err)
	}
	_, err = c.NewProfileServiceClient(sec.Client(nil), url, sec.Bearer("admin")).GetProfile(context.Background(),
		connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: "by-mallory"}))
	wantCode(t, "the profile the other CA's admin tried to create", err, connect.CodeNotFound)
}

// Bearer credentials must be a "Bearer <token>" of an accepted token; callers without any get
// only what is public: health and the probes.
func TestBearerTokensAndPublicEndpoints(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	const metricBody = "ebbflow_test_metric 1\n"
	url := controllertest.StartSecureCluster(t, 1, sec, func(cfg *controller.Config) {
		cfg.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, metricBody) })
	})[0].URL
	hc := sec.Client(nil)
	unknown, err := pki.NewBearerToken()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, header string
		code         connect.Code // 0: accepted as the viewer
	}{
		{"the viewer's token", "Bearer " + sec.Tokens["viewer"], 0},
		{"scheme in lower case", "bearer " + sec.Tokens["viewer"], 0},
		{"unknown token", "Bearer " + unknown, connect.CodeUnauthenticated},
		{"a JWT-shaped token without JWT configured", "Bearer a.b.c", connect.CodeUnauthenticated},
		{"the viewer's token with a suffix", "Bearer " + sec.Tokens["viewer"] + "x", connect.CodeUnauthenticated},
		{"Basic", "Basic dmlld2VyOnZpZXdlcg==", connect.CodeUnauthenticated},
		{"Basic with the viewer's token", "Basic " + sec.Tokens["viewer"], connect.CodeUnauthenticated},
		{"Bearer alone", "Bearer", connect.CodeUnauthenticated},
		{"Bearer and a space", "Bearer ", connect.CodeUnauthenticated},
		{"the token without a scheme", sec.Tokens["viewer"], connect.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := authorization(tc.header)
			who, err := whoAmI(hc, url, opt)
			if tc.code == 0 {
				wantWhoAmI(t, tc.name, who, err, ebbflowv1.IdentityKind_IDENTITY_KIND_PERSON, "viewer", ebbflowv1.Role_ROLE_VIEWER, "token")
				if err := viewerCall(hc, url, opt); err != nil {
					t.Errorf("viewer RPC: %v", err)
				}
				wantCode(t, "operator RPC", operatorCall(hc, url, opt), connect.CodePermissionDenied)
				return
			}
			wantCode(t, "WhoAmI", err, tc.code)
			wantCode(t, "viewer RPC", viewerCall(hc, url, opt), tc.code)
		})
	}

	_, err = whoAmI(hc, url)
	wantCode(t, "WhoAmI without credentials", err, connect.CodeUnauthenticated)
	wantCode(t, "viewer RPC without credentials", viewerCall(hc, url), connect.CodeUnauthenticated)

	ctx := context.Background()
	for _, proto := range []struct {
		name string
		opts []connect.ClientOption
	}{{"connect", nil}, {"grpc", []connect.ClientOption{connect.WithGRPC()}}} {
		health := grpchealth.NewClient(hc, url, proto.opts...)
		for _, svc := range []string{"", c.ProfileServiceName} {
			// Without credentials, and SERVING once the node is ready (it may still be applying
			// its first entries).
			var res *grpchealth.CheckResponse
			controllertest.Eventually(t, 10*time.Second, proto.name+" health SERVING without credentials", func() bool {
				res, err = health.Check(ctx, &grpchealth.CheckRequest{Service: svc})
				return err == nil && res.Status == grpchealth.StatusServing
			})
		}
	}

	get := func(path string, cert *tls.Certificate, header string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		res, err := sec.Client(cert).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(b)
	}
	if code, body := get("/healthz", nil, ""); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz without credentials: %d %q", code, body)
	}
	var readyCode int
	var readyBody string
	controllertest.Eventually(t, 10*time.Second, "/readyz to stop answering 503", func() bool {
		readyCode, readyBody = get("/readyz", nil, "")
		return readyCode != http.StatusServiceUnavailable
	})
	if readyCode != http.StatusOK || readyBody != "ready\n" {
		t.Errorf("GET /readyz without credentials: %d %q", readyCode, readyBody)
	}

	agent := sec.Join(t, url, "c1")
	certPEM, keyPEM, err := sec.CA.IssuePerson("alice", "viewer", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cert   *tls.Certificate
		header string
		status int
	}{
		{"no credentials", nil, "", http.StatusUnauthorized},
		{"unknown token", nil, "Bearer " + unknown, http.StatusUnauthorized},
		{"malformed header", nil, "Basic x", http.StatusUnauthorized},
		{"the viewer's token", nil, "Bearer " + sec.Tokens["viewer"], http.StatusOK},
		{"the admin's token", nil, "Bearer " + sec.Tokens["admin"], http.StatusOK},
		{"a viewer's certificate", &alice, "", http.StatusOK},
		{"an agent's certificate", &agent, "", http.StatusForbidden},
	} {
		code, body := get("/metrics", tc.cert, tc.header)
		if code != tc.status {
			t.Errorf("GET /metrics with %s: status %d, want %d (%q)", tc.name, code, tc.status, body)
		}
		if got := body == metricBody; got != (tc.status == http.StatusOK) {
			t.Errorf("GET /metrics with %s: body %q", tc.name, body)
		}
	}
}

func parseCertPEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %q", b)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// An agent renews its certificate with a new key: same identity, new serial, the configured
// lifetime; only an agent may, and not once its cluster's identity is revoked.
func TestRenewCertificate(t *testing.T) {
	const ttl = 2 * time.Minute
	sec := controllertest.NewSecurity(t)
	url := controllertest.StartSecureCluster(t, 1, sec, func(cfg *controller.Config) { cfg.AgentCertTTL = ttl })[0].URL
	ctx := context.Background()

	joinedAt := time.Now()
	old := sec.Join(t, url, "c1")
	oldLeaf := parseCertPEM(t, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: old.Certificate[0]}))
	if d := oldLeaf.NotAfter.Sub(joinedAt); d < ttl-2*time.Second || d > ttl+time.Minute {
		t.Fatalf("joined certificate valid for %v, want about %v", d, ttl)
	}
	oldID, err := pki.IdentityOf(oldLeaf)
	if err != nil {
		t.Fatal(err)
	}

	keyPEM, csrPEM, err := pki.NewKeyAndCSR("c1")
	if err != nil {
		t.Fatal(err)
	}
	renew := func(hc *http.Client, csr []byte, opts ...connect.ClientOption) (*ebbflowv1.RenewCertificateResponse, error) {
		res, err := c.NewAgentServiceClient(hc, url, opts...).RenewCertificate(ctx, connect.NewRequest(&ebbflowv1.RenewCertificateRequest{CsrPem: string(csr)}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	before := time.Now()
	res, err := renew(sec.Client(&old), csrPEM)
	after := time.Now()
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	leaf := parseCertPEM(t, []byte(res.GetCertificatePem()))
	if leaf.SerialNumber.Cmp(oldLeaf.SerialNumber) == 0 {
		t.Errorf("renewed certificate has the old serial %v", leaf.SerialNumber)
	}
	id, err := pki.IdentityOf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if id != oldID || id.Kind != pki.KindAgent || id.Name != "c1" {
		t.Errorf("renewed identity %v, want %v", id, oldID)
	}
	// Certificates carry whole seconds.
	if lo, hi := before.Add(ttl).Truncate(time.Second), after.Add(ttl); leaf.NotAfter.Before(lo) || leaf.NotAfter.After(hi) {
		t.Errorf("renewed certificate expires at %v, want between %v and %v", leaf.NotAfter, lo, hi)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: sec.CA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("renewed certificate does not verify against the CA: %v", err)
	}
	if res.GetCaPem() != string(sec.CA.CertPEM) {
		t.Errorf("CA PEM %q, want the group's", res.GetCaPem())
	}
	renewed, err := tls.X509KeyPair([]byte(res.GetCertificatePem()), keyPEM)
	if err != nil {
		t.Fatalf("renewed certificate is not for the CSR's key: %v", err)
	}
	hc := sec.Client(&renewed)
	who, err := whoAmI(hc, url)
	wantWhoAmI(t, "renewed certificate", who, err, ebbflowv1.IdentityKind_IDENTITY_KIND_AGENT, "c1", ebbflowv1.Role_ROLE_UNSPECIFIED, "certificate")
	if _, err := c.NewAgentServiceClient(hc, url).RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1"})); err != nil {
		t.Fatalf("RegisterAgent with the renewed certificate: %v", err)
	}

	_, err = renew(sec.Client(&renewed), []byte("not a CSR"))
	wantCode(t, "renew with a malformed CSR", err, connect.CodeInvalidArgument)
	_, err = renew(sec.Client(nil), csrPEM, sec.Bearer("admin"))
	wantCode(t, "renew as the admin", err, connect.CodePermissionDenied)
	certPEM, personKey, err := sec.CA.IssuePerson("alice", "admin", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice, err := tls.X509KeyPair(certPEM, personKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = renew(sec.Client(&alice), csrPEM)
	wantCode(t, "renew with a person's certificate", err, connect.CodePermissionDenied)
	_, err = renew(sec.Client(nil), csrPEM)
	wantCode(t, "renew without credentials", err, connect.CodeUnauthenticated)

	access := c.NewAccessServiceClient(sec.Client(nil), url, sec.Bearer("admin"))
	if _, err := access.RevokeClusterIdentity(ctx, connect.NewRequest(&ebbflowv1.RevokeClusterIdentityRequest{Cluster: "c1"})); err != nil {
		t.Fatal(err)
	}
	_, err = renew(sec.Client(&old), csrPEM)
	wantErr(t, "renew with the joined certificate after revocation", err, connect.CodeUnauthenticated, "revoked")
	_, err = renew(sec.Client(&renewed), csrPEM)
	wantErr(t, "renew with the renewed certificate after revocation", err, connect.CodeUnauthenticated, "revoked")
}
