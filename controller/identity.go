package controller

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func (a *agentService) JoinCluster(ctx context.Context, req *connect.Request[ebbflowv1.JoinClusterRequest]) (*connect.Response[ebbflowv1.JoinClusterResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("joining is not built yet"))
}

func (a *agentService) RenewCertificate(ctx context.Context, req *connect.Request[ebbflowv1.RenewCertificateRequest]) (*connect.Response[ebbflowv1.RenewCertificateResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("renewal is not built yet"))
}
