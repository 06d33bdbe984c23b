package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ebbflow/ebbflow/internal/pki"
	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

// Join tokens live from minJoinTokenTTL to maxJoinTokenTTL, an hour unless asked otherwise;
// agents' certificates DefaultAgentCertTTL unless configured.
const (
	minJoinTokenTTL     = time.Minute
	maxJoinTokenTTL     = 7 * 24 * time.Hour
	defaultJoinTokenTTL = time.Hour
	DefaultAgentCertTTL = 24 * time.Hour
)

var errNoCA = errors.New("this controller runs without a certificate authority (authentication is off); agents cannot join")

// JoinCluster exchanges a join token for the cluster's certificate. The token is used up in
// the same Raft command that starts the cluster's new identity epoch, so two agents racing with
// one token cannot both get a certificate, and a certificate of an earlier epoch stops working.
func (a *agentService) JoinCluster(ctx context.Context, req *connect.Request[ebbflowv1.JoinClusterRequest]) (*connect.Response[ebbflowv1.JoinClusterResponse], error) {
	m := req.Msg
	if a.cfg.CA == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errNoCA)
	}
	// Everything that could refuse the join is checked before the token is spent: a refused
	// request leaves the token and the cluster's current identity as they were.
	csr, err := pki.ParseCSR([]byte(m.GetCsrPem()))
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("csr_pem: %w", err))
	}
	if err := a.cfg.CA.CanIssue(a.now()); err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	}
	id, secret, _ := pki.ParseJoinToken(m.GetToken())
	out, err := a.store.Apply(ctx, &storev1.Command{Actor: actorOf(ctx), Body: &storev1.Command_ConsumeJoinToken{
		ConsumeJoinToken: &storev1.ConsumeJoinToken{Id: id, SecretHash: pki.HashSecret(secret)},
	}})
	if errors.Is(err, store.ErrNotFound) {
		// The same answer as a wrong secret: a caller learns nothing about which ids exist.
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("join token not accepted"))
	}
	if err != nil {
		return nil, err
	}
	ci := out.(*storev1.ClusterIdentity)
	cert, err := a.cfg.CA.IssueForRequest(csr,
		pki.Identity{Kind: pki.KindAgent, Name: ci.GetCluster(), Epoch: ci.GetEpoch()}, a.cfg.AgentCertTTL, a.now())
	if err != nil {
		// The token is spent and the epoch moved on: the caller needs a new token.
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("the join token was used but no certificate could be signed (create a new token): %w", err))
	}
	a.log.InfoContext(ctx, "agent joined", "cluster", ci.GetCluster(), "epoch", ci.GetEpoch(), "token", id)
	return connect.NewResponse(&ebbflowv1.JoinClusterResponse{Cluster: ci.GetCluster(), CertificatePem: string(cert), CaPem: string(a.cfg.CA.CertPEM)}), nil
}

// RenewCertificate issues the calling agent a new certificate of its current identity epoch
// (the Verifier has checked that the one it calls with is of that epoch and not revoked).
func (a *agentService) RenewCertificate(ctx context.Context, req *connect.Request[ebbflowv1.RenewCertificateRequest]) (*connect.Response[ebbflowv1.RenewCertificateResponse], error) {
	if a.cfg.CA == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errNoCA)
	}
	caller := identityOf(ctx)
	if caller.Kind != ebbflowv1.IdentityKind_IDENTITY_KIND_AGENT {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("only an agent calling with its certificate can renew it"))
	}
	var epoch uint64
	if err := a.raw.View(ctx, store.Stale, func(tx *store.Tx) error {
		ci, ok, err := tx.ClusterIdentity(caller.Name)
		if !ok || ci.GetRevoked() {
			return fmt.Errorf("cluster %q has no identity to renew: %w", caller.Name, store.ErrNotFound)
		}
		epoch = ci.GetEpoch()
		return err
	}); err != nil {
		return nil, toConnectError(err)
	}
	cert, err := a.cfg.CA.IssueFromCSR([]byte(req.Msg.GetCsrPem()),
		pki.Identity{Kind: pki.KindAgent, Name: caller.Name, Epoch: epoch}, a.cfg.AgentCertTTL, a.now())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("csr_pem: %w", err))
	}
	return connect.NewResponse(&ebbflowv1.RenewCertificateResponse{CertificatePem: string(cert), CaPem: string(a.cfg.CA.CertPEM)}), nil
}

// accessService serves AccessService.
type accessService struct{ *Server }

func (s *accessService) WhoAmI(ctx context.Context, req *connect.Request[ebbflowv1.WhoAmIRequest]) (*connect.Response[ebbflowv1.WhoAmIResponse], error) {
	id := identityOf(ctx)
	return connect.NewResponse(&ebbflowv1.WhoAmIResponse{Kind: id.Kind, Name: id.Name, Role: id.Role, Method: id.Method}), nil
}

func (s *accessService) CreateJoinToken(ctx context.Context, req *connect.Request[ebbflowv1.CreateJoinTokenRequest]) (*connect.Response[ebbflowv1.CreateJoinTokenResponse], error) {
	m := req.Msg
	id, secret, err := pki.NewJoinToken()
	if err != nil {
		return nil, err
	}
	ttl := defaultJoinTokenTTL
	if m.GetTtl() != nil {
		ttl = m.GetTtl().AsDuration()
	}
	out, err := s.store.Apply(ctx, &storev1.Command{Actor: actorOf(ctx), Body: &storev1.Command_CreateJoinToken{
		CreateJoinToken: &storev1.CreateJoinToken{
			Token:      &ebbflowv1.JoinToken{Id: id, Cluster: m.GetCluster(), Description: m.GetDescription(), ExpireTime: timestamppb.New(s.now().Add(ttl))},
			SecretHash: pki.HashSecret(secret),
		},
	}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ebbflowv1.CreateJoinTokenResponse{Token: id + "." + secret, JoinToken: out.(*ebbflowv1.JoinToken)}), nil
}

func (s *accessService) ListJoinTokens(ctx context.Context, req *connect.Request[ebbflowv1.ListJoinTokensRequest]) (*connect.Response[ebbflowv1.ListJoinTokensResponse], error) {
	m := req.Msg
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.ListJoinTokensResponse, error) {
		toks, err := tx.JoinTokens(m.GetCluster())
		if err != nil {
			return nil, err
		}
		now := s.now()
		for _, t := range toks {
			if t.GetState() == ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_PENDING && !now.Before(t.GetExpireTime().AsTime()) {
				t.State = ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_EXPIRED
			}
		}
		sort.SliceStable(toks, func(i, j int) bool { return toks[i].GetCreateTime().AsTime().After(toks[j].GetCreateTime().AsTime()) })
		return &ebbflowv1.ListJoinTokensResponse{JoinTokens: toks}, nil
	})
}

func (s *accessService) RevokeJoinToken(ctx context.Context, req *connect.Request[ebbflowv1.RevokeJoinTokenRequest]) (*connect.Response[ebbflowv1.RevokeJoinTokenResponse], error) {
	m := req.Msg
	out, err := s.store.Apply(ctx, &storev1.Command{Actor: actorOf(ctx), Body: &storev1.Command_RevokeJoinToken{
		RevokeJoinToken: &storev1.RevokeJoinToken{Id: m.GetId()},
	}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ebbflowv1.RevokeJoinTokenResponse{JoinToken: out.(*ebbflowv1.JoinToken)}), nil
}

func (s *accessService) RevokeClusterIdentity(ctx context.Context, req *connect.Request[ebbflowv1.RevokeClusterIdentityRequest]) (*connect.Response[ebbflowv1.RevokeClusterIdentityResponse], error) {
	m := req.Msg
	out, err := s.store.Apply(ctx, &storev1.Command{Actor: actorOf(ctx), Body: &storev1.Command_RevokeClusterIdentity{
		RevokeClusterIdentity: &storev1.RevokeClusterIdentity{Cluster: m.GetCluster()},
	}})
	if err != nil {
		return nil, err
	}
	ci := out.(*storev1.ClusterIdentity)
	s.log.InfoContext(ctx, "cluster identity revoked", "cluster", ci.GetCluster(), "epoch", ci.GetEpoch(), "by", actorOf(ctx))
	return connect.NewResponse(&ebbflowv1.RevokeClusterIdentityResponse{Epoch: ci.GetEpoch()}), nil
}
