package controller_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// clients are Connect clients for every service of one node.
type clients struct {
	profiles   ebbflowv1connect.ProfileServiceClient
	clusters   ebbflowv1connect.ClusterServiceClient
	rollouts   ebbflowv1connect.RolloutServiceClient
	agents     ebbflowv1connect.AgentServiceClient
	controller ebbflowv1connect.ControllerServiceClient
}

func newClients(url string, opts ...connect.ClientOption) clients {
	hc := controllertest.HTTPClient()
	return clients{
		profiles:   ebbflowv1connect.NewProfileServiceClient(hc, url, opts...),
		clusters:   ebbflowv1connect.NewClusterServiceClient(hc, url, opts...),
		rollouts:   ebbflowv1connect.NewRolloutServiceClient(hc, url, opts...),
		agents:     ebbflowv1connect.NewAgentServiceClient(hc, url, opts...),
		controller: ebbflowv1connect.NewControllerServiceClient(hc, url, opts...),
	}
}

// minimalSpec is the smallest valid profile.
func minimalSpec() *ebbflowv1.ProfileSpec {
	return &ebbflowv1.ProfileSpec{
		Description: "test",
		Chart:       &ebbflowv1.ChartRef{Repository: "https://helm.cilium.io", Version: ">=1.16.0 <1.19.0"},
	}
}

func mustCreateProfile(t *testing.T, c clients, name string) *ebbflowv1.Profile {
	t.Helper()
	res, err := c.profiles.CreateProfile(context.Background(), connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: name, Spec: minimalSpec()}))
	if err != nil {
		t.Fatalf("create profile %s: %v", name, err)
	}
	return res.Msg.GetProfile()
}
