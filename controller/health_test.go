package controller_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// gRPC health and /readyz tell the same truth: a node that has lost its group (no leader) is
// NOT_SERVING and 503, overall and per service, and SERVING and 200 again once a leader is back.
func TestHealthFollowsReadiness(t *testing.T) {
	nodes := controllertest.StartCluster(t, 3)
	leader := controllertest.Leader(t, nodes)
	var others []*controllertest.Node
	for _, n := range nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	ctx := context.Background()
	hc := controllertest.HTTPClient()
	state := func() (overall, profiles grpchealth.Status, readyz int) {
		t.Helper()
		health := grpchealth.NewClient(hc, leader.URL, connect.WithGRPC())
		for i, svc := range []string{"", c.ProfileServiceName} {
			res, err := health.Check(ctx, &grpchealth.CheckRequest{Service: svc})
			if err != nil {
				t.Fatalf("health check of %q: %v", svc, err)
			}
			if i == 0 {
				overall = res.Status
			} else {
				profiles = res.Status
			}
		}
		res, err := hc.Get(leader.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return overall, profiles, res.StatusCode
	}
	serving := func() bool {
		o, p, r := state()
		return o == grpchealth.StatusServing && p == grpchealth.StatusServing && r == http.StatusOK
	}
	notServing := func() bool {
		o, p, r := state()
		return o == grpchealth.StatusNotServing && p == grpchealth.StatusNotServing && r == http.StatusServiceUnavailable
	}
	controllertest.Eventually(t, 10*time.Second, "SERVING and 200 with a leader", serving)

	_, err := grpchealth.NewClient(hc, leader.URL).Check(ctx, &grpchealth.CheckRequest{Service: "no.such.Service"})
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("health of an unknown service: %v, want not_found", err)
	}

	for _, n := range others {
		n.Stop()
	}
	controllertest.Eventually(t, 20*time.Second, "NOT_SERVING and 503 once the node is alone", notServing)

	others[0].Restart(t)
	controllertest.Eventually(t, 20*time.Second, "SERVING and 200 once a quorum is back", serving)
}
