package main

// Writes that come back UNKNOWN (the leader changed while they committed: applied or not) or
// lose a race, and the commands that finish them anyway. The faults come from a proxy in front
// of a real controller (faultproxy_test.go).

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// A label write whose answer is UNKNOWN (the leader changed while it committed: applied or
// not) or ABORTED (another change came first) is not the command's answer: `cluster label`
// reads the cluster again and finishes the job, never applying its change twice and never
// overwriting the other change.
func TestClusterLabelFinishesAfterUnknownOrConflict(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	direct := ebbflowv1connect.NewClusterServiceClient(controllertest.HTTPClient(), n.URL)
	get := func() *ebbflowv1.Cluster {
		t.Helper()
		res, err := direct.GetCluster(context.Background(), connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "eu-1"}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetCluster()
	}
	mustRun(t, n.URL, "cluster", "register", "eu-1", "-l", "env=prod")
	proxy := newFaultProxy(t, n.URL, ebbflowv1connect.ClusterServiceSetClusterLabelsProcedure)
	// Another change lands between the command's read and its write.
	someoneElse := func() {
		c := get()
		labels := map[string]string{"owner": "team-b"}
		for k, v := range c.GetLabels() {
			labels[k] = v
		}
		if _, err := direct.SetClusterLabels(context.Background(), connect.NewRequest(&ebbflowv1.SetClusterLabelsRequest{
			Name: "eu-1", Labels: labels, ExpectedGeneration: c.GetGeneration(),
		})); err != nil {
			t.Errorf("the other change: %v", err)
		}
	}

	for _, tc := range []struct {
		fault, label string
		writes       uint64 // generations added, the other change's included
		say          string
		want         string // the labels after
	}{
		{faultAnswerLost, "tier=gold", 1, "already has the labels", "env=prod,tier=gold"},
		{faultNotApplied, "zone=a", 1, "reading it again", "env=prod,tier=gold,zone=a"},
		{"someone-else-first", "tier=silver", 2, "aborted", "env=prod,owner=team-b,tier=silver,zone=a"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			before := get().GetGeneration()
			proxy.inject(tc.fault, someoneElse)
			code, out, errOut := fleetctl(t, proxy.URL, "", "cluster", "label", "eu-1", tc.label)
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if !strings.Contains(out, "labels: "+tc.want) {
				t.Errorf("stdout %q, want labels: %s", out, tc.want)
			}
			if !strings.Contains(errOut, tc.say) {
				t.Errorf("stderr %q does not say %q", errOut, tc.say)
			}
			after := get()
			if got := labelString(after.GetLabels()); got != tc.want {
				t.Errorf("stored labels %s, want %s", got, tc.want)
			}
			if got := after.GetGeneration() - before; got != tc.writes {
				t.Errorf("%d writes applied, want %d", got, tc.writes)
			}
		})
	}
}

// pause, resume and abort answered UNKNOWN (the leader changed while the control committed)
// are sent again: a repeat of one that took effect changes nothing (a pause or resume answers
// with the rollout as it is; an abort is refused, and the command reads the rollout and says it
// is already aborted); one that did not take effect takes effect now. Either way the command
// exits 0 and the control is applied once.
func TestRolloutControlsFinishAfterUnknown(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	mustRun(t, n.URL, "profile", "apply", "-f", repoFile(t, "deploy/profiles/bare-metal.yaml"))
	// The canary holds in l7 until the test ends: the rollout stays running.
	hold, reached := make(chan struct{}), make(chan string, 1)
	t.Cleanup(func() { close(hold) })
	controllertest.StartFleet(t, []string{n.URL}, 1, nil, func(a *controllertest.Agent) {
		a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_L7, hold, reached
	})
	if code, out, errOut := fleetctl(t, n.URL, rolloutYAML("r1", "FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS", 0), "rollout", "create", "-f", "-"); code != 0 {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	direct := ebbflowv1connect.NewRolloutServiceClient(controllertest.HTTPClient(), n.URL)
	get := func() *ebbflowv1.Rollout {
		t.Helper()
		res, err := direct.GetRollout(context.Background(), connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "r1", OmitMeasurements: true}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetRollout()
	}
	events := func(kind string) int {
		t.Helper()
		res, err := direct.GetRolloutHistory(context.Background(), connect.NewRequest(&ebbflowv1.GetRolloutHistoryRequest{Id: "r1"}))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range res.Msg.GetEvents() {
			if e.GetKind() == kind {
				n++
			}
		}
		return n
	}
	c := ebbflowv1connect.RolloutServiceName
	for _, tc := range []struct {
		verb, procedure, fault, say string
		want                        ebbflowv1.RolloutState
	}{
		{"pause", "/" + c + "/PauseRollout", faultAnswerLost, "now paused", ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED},
		{"resume", "/" + c + "/ResumeRollout", faultNotApplied, "now ", ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING},
		{"pause", "/" + c + "/PauseRollout", faultNotApplied, "now paused", ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED},
		{"abort", "/" + c + "/AbortRollout", faultAnswerLost, "already aborted", ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED},
	} {
		t.Run(tc.verb+"/"+tc.fault, func(t *testing.T) {
			proxy := newFaultProxy(t, n.URL, tc.procedure)
			proxy.inject(tc.fault, nil)
			before := events(tc.verb)
			code, out, errOut := fleetctl(t, proxy.URL, "", "rollout", tc.verb, "r1")
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if !strings.Contains(out, tc.say) || !strings.Contains(errOut, "sending it again") {
				t.Errorf("stdout %q does not say %q, or stderr %q does not say it sent the control again", out, tc.say, errOut)
			}
			if st := get().GetState(); st != tc.want && tc.verb != "resume" || tc.verb == "resume" && st == ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED {
				t.Errorf("state %s after %s, want %s", st, tc.verb, tc.want)
			}
			if got := events(tc.verb) - before; got != 1 {
				t.Errorf("%d %s events recorded, want 1 (the control applied once)", got, tc.verb)
			}
		})
	}
}
