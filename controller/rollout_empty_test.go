package controller_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// A rollout whose plan changes nothing (its only cluster is cordoned) is refused with the
// plan's reason, holds nothing, and is created only with allow_empty.
func TestEmptyRolloutIsRefused(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{Config: fastEngine})
	c := newClients(n.URL)
	applyBareMetal(t, c)
	ctx := context.Background()
	if _, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "c1", Labels: map[string]string{"env": "prod"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.clusters.CordonCluster(ctx, connect.NewRequest(&ebbflowv1.CordonClusterRequest{Name: "c1", Reason: "kernel upgrade"})); err != nil {
		t.Fatal(err)
	}
	spec := fleetSpec(ebbflowv1.FailurePolicy_FAILURE_POLICY_HALT_ONLY, 0)
	_, err := c.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "r1", Spec: spec}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		t.Fatalf("create of an empty plan: got %v, want FAILED_PRECONDITION", err)
	}
	for _, want := range []string{"changes nothing", "c1: cordoned", "kernel upgrade", "allow_empty"} {
		if !strings.Contains(ce.Message(), want) {
			t.Errorf("error %q does not say %q", ce.Message(), want)
		}
	}
	if _, err := c.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "r1"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("refused rollout r1 exists: %v", err)
	}
	res, err := c.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "r1", Spec: spec, AllowEmpty: true}))
	if err != nil {
		t.Fatalf("create with allow_empty: %v", err)
	}
	if got := len(res.Msg.GetRollout().GetSkipped()); got != 1 {
		t.Fatalf("allowed empty rollout skips %d clusters, want 1 (c1)", got)
	}
}
