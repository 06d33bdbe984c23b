package cluster

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/release"

	"github.com/ebbflow/ebbflow/e2e/kubebox"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

var errKilled = errors.New("killed")

// killAndResume runs a with a driver killed right after step, then, as a restarted agent
// would, Resume and Execute of the same assignment (the controller re-sends it); it fails on
// a FAILED report and returns the reports after the restart.
func killAndResume(t *testing.T, e *env, a *ebbflowv1.Assignment, step string) []report {
	t.Helper()
	ctx := context.Background()
	err := e.driver(killAt(step)).Execute(ctx, a, &recorder{})
	if !errors.Is(err, ErrStopped) || !errors.Is(err, errKilled) {
		t.Fatalf("killed driver returned %v", err)
	}
	rec := &recorder{}
	d := e.driver(nil)
	if err := d.Resume(ctx, rec); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if err := d.Execute(ctx, a, rec); err != nil {
		t.Fatalf("execute: %v", err)
	}
	rs := rec.take()
	for _, r := range rs {
		if r.status == ebbflowv1.PhaseStatus_PHASE_STATUS_FAILED {
			t.Fatalf("failure reported: %v %s", r, r.msg)
		}
	}
	return rs
}

// killAt is an AfterStep hook that kills the driver right after step.
func killAt(step string) func(string) error {
	return func(s string) error {
		if s == step {
			return errKilled
		}
		return nil
	}
}

// TestCrashResume kills the driver after every step of kpr, and after every step of a
// rollback, then lets a new driver Resume and Execute the same assignment: it converges, with
// exactly one Helm upgrade (or rollback) for the assignment, kube-proxy parked (or un-parked)
// once and the parked list intact. Each case has its own namespaces in one shared cluster.
func TestCrashResume(t *testing.T) {
	c := kubebox.ForTest(t, kubebox.Options{Nodes: []kubebox.Node{
		{Name: "node-a", Kernel: "6.8.0-45-generic", Labels: map[string]string{nicLabel: "mlx5_core"}},
		{Name: "node-b", Kernel: "5.15.0-122-generic", Labels: map[string]string{nicLabel: "ixgbe"}},
	}})
	for _, step := range applyOrder {
		t.Run("kpr/"+step, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ns := "c-kpr-" + step
			e := newEnv(t, c, ns, "ebbflow-"+ns, map[string]any{"l7Proxy": false}, true)
			spec := testProfile(t, ns, nil, []*ebbflowv1.DaemonSetRef{{Namespace: ns, Name: "kube-proxy"}})
			a := assignment("a-kpr", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.Phase_PHASE_KPR, spec, nil)

			rs := killAndResume(t, e, a, step)
			if len(rs) == 0 || rs[len(rs)-1].status != ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED {
				t.Fatalf("reports after the restart %v, want MEASURED last", rs)
			}
			d := e.driver(nil)
			hs := e.history()
			upgrades := 0
			for _, h := range hs {
				if strings.Contains(h.Info.Description, "assignment a-kpr") {
					upgrades++
				}
			}
			if len(hs) != 2 || upgrades != 1 || hs[1].Info.Status != "deployed" {
				t.Fatalf("helm history: %d revisions, %d upgrades of the phase, last %s", len(hs), upgrades, hs[len(hs)-1].Info.Status)
			}
			if e.config()["kube-proxy-replacement"] != "true" {
				t.Error("kube-proxy-replacement not on")
			}
			kp := e.ds("kube-proxy")
			if kp.Spec.Template.Spec.NodeSelector[ParkLabel] != "true" || !dsParked(kp) || kp.Annotations[ParkedAnnotation] != `{"kubernetes.io/os":"linux"}` {
				t.Errorf("kube-proxy not parked: %v %s", kp.Spec.Template.Spec.NodeSelector, dsStatus(kp))
			}
			p, err := d.Progress(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Done || p.Status != "PHASE_STATUS_MEASURED" || len(p.Parked) != 1 ||
				!maps.Equal(p.Parked[0].NodeSelector, map[string]string{"kubernetes.io/os": "linux"}) {
				t.Errorf("progress %+v", p)
			}
		})
	}
	t.Run("kpr/killed-during-helm-upgrade", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		ns := "c-kpr-helm"
		e := newEnv(t, c, ns, "ebbflow-"+ns, map[string]any{"l7Proxy": false}, true)
		configBefore := e.config()
		spec := testProfile(t, ns, nil, []*ebbflowv1.DaemonSetRef{{Namespace: ns, Name: "kube-proxy"}})
		a := assignment("a-kpr", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.Phase_PHASE_KPR, spec, nil)
		if err := e.driver(killAt(StepUpgrading)).Execute(ctx, a, &recorder{}); !errors.Is(err, ErrStopped) {
			t.Fatalf("killed driver returned %v", err)
		}
		// The process died inside `helm upgrade`: Helm had stored the new revision as pending.
		cfg := e.helm()
		last := e.last()
		pending := *last
		pending.Info = &release.Info{Status: release.StatusPendingUpgrade, Description: "Preparing upgrade",
			FirstDeployed: last.Info.FirstDeployed, LastDeployed: last.Info.LastDeployed}
		pending.Version = last.Version + 1
		if err := cfg.Releases.Create(&pending); err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		d := e.driver(nil)
		err := d.Resume(ctx, rec)
		if err == nil || !strings.Contains(err.Error(), "pending-upgrade") {
			t.Fatalf("resume returned %v, want the interrupted upgrade", err)
		}
		rs := rec.take()
		if got := statuses(rs); !slices.Equal(got, []string{"FAILED"}) ||
			!strings.Contains(rs[0].msg, "stopped during the Helm upgrade") || !strings.Contains(rs[0].msg, "rolled back to Helm revision 1") {
			t.Fatalf("reports %v: %s", rs, rs[0].msg)
		}
		hs := e.history()
		if len(hs) != 3 || hs[2].Info.Description != "Rollback to 1" || hs[2].Info.Status != release.StatusDeployed {
			t.Fatalf("history: %d revisions, last %q", len(hs), hs[len(hs)-1].Info.Description)
		}
		if got := e.config(); !maps.Equal(got, configBefore) {
			t.Errorf("cilium-config changed: %v", diffConfig(got, configBefore))
		}
		if kp := e.ds("kube-proxy"); !dsReady(kp) || kp.Status.NumberReady != 2 {
			t.Errorf("kube-proxy: %s", dsStatus(kp))
		}
		// The controller may assign the phase again: it applies cleanly on top.
		a.Id = "a-kpr-2"
		if err := d.Execute(ctx, a, rec); err != nil {
			t.Fatal(err)
		}
		if hs := e.history(); len(hs) != 4 || !strings.Contains(hs[3].Info.Description, "assignment a-kpr-2") {
			t.Errorf("retry: %d revisions", len(hs))
		}
	})
	for _, step := range rollbackOrder {
		t.Run("rollback/"+step, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ns := "c-rb-" + step
			e := newEnv(t, c, ns, "ebbflow-"+ns, map[string]any{"l7Proxy": false}, true)
			configBefore := e.config()
			spec := testProfile(t, ns, nil, []*ebbflowv1.DaemonSetRef{{Namespace: ns, Name: "kube-proxy"}})
			apply := assignment("a-kpr", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.Phase_PHASE_KPR, spec, nil)
			if err := e.driver(nil).Execute(ctx, apply, &recorder{}); err != nil {
				t.Fatal(err)
			}
			// No revision named: the driver takes the rollout's recorded pre-rollout revision.
			rb := assignment("a-rb", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK, ebbflowv1.Phase_PHASE_KPR, spec, nil)
			err := e.driver(killAt(step)).Execute(ctx, rb, &recorder{})
			if !errors.Is(err, ErrStopped) {
				t.Fatalf("killed driver returned %v", err)
			}
			rec := &recorder{}
			d := e.driver(nil)
			if err := d.Resume(ctx, rec); err != nil {
				t.Fatalf("resume: %v", err)
			}
			if err := d.Execute(ctx, rb, rec); err != nil {
				t.Fatalf("execute: %v", err)
			}
			rs := rec.take()
			if len(rs) == 0 || rs[len(rs)-1].status != ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK {
				t.Fatalf("reports after the restart %v, want ROLLED_BACK last", rs)
			}
			hs := e.history()
			var rollbacks []int
			for _, h := range hs {
				if h.Info.Description == "Rollback to 1" {
					rollbacks = append(rollbacks, h.Version)
				}
			}
			if len(hs) != 3 || !slices.Equal(rollbacks, []int{3}) || hs[2].Info.Status != "deployed" {
				t.Fatalf("helm history: %d revisions, rollbacks at %v", len(hs), rollbacks)
			}
			if got := e.config(); !maps.Equal(got, configBefore) {
				t.Errorf("cilium-config not back: %v", diffConfig(got, configBefore))
			}
			kp := e.ds("kube-proxy")
			if _, parked := kp.Spec.Template.Spec.NodeSelector[ParkLabel]; parked || !dsReady(kp) || kp.Status.NumberReady != 2 {
				t.Errorf("kube-proxy not un-parked and ready: %v %s", kp.Spec.Template.Spec.NodeSelector, dsStatus(kp))
			}
			p, err := d.Progress(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Done || p.Status != "PHASE_STATUS_ROLLED_BACK" || len(p.Parked) != 0 {
				t.Errorf("progress %+v", p)
			}
		})
	}
}

// TestFailedUpgradeRollsBack: a phase whose verification fails is rolled back to the revision
// before it and reported FAILED with the reason; what it parked is un-parked.
func TestFailedStepRollsBack(t *testing.T) {
	ctx := context.Background()
	c := kubebox.ForTest(t, kubebox.Options{Nodes: []kubebox.Node{
		{Name: "node-a", Kernel: "6.8.0-45-generic", Labels: map[string]string{nicLabel: "mlx5_core"}},
	}})
	e := newEnv(t, c, "kube-system", "ebbflow-system", map[string]any{"l7Proxy": false}, false)
	if err := c.InstallKubeProxy(ctx); err != nil {
		t.Fatal(err)
	}
	configBefore := e.config()
	spec := testProfile(t, "kube-system", nil, nil)
	// The test chart renders tunnel-protocol only in tunnel mode: asking for geneve with native
	// routing can never verify.
	spec.Kpr.Values.TunnelProtocol = ebbflowv1.TunnelProtocol_TUNNEL_PROTOCOL_GENEVE
	rec := &recorder{}
	err := e.driver(nil).Execute(ctx, assignment("a-kpr", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.Phase_PHASE_KPR, spec, nil), rec)
	if err == nil || !strings.Contains(err.Error(), "tunnel-protocol") {
		t.Fatalf("Execute returned %v, want the verification failure", err)
	}
	rs := rec.take()
	if got := statuses(rs); !slices.Equal(got, []string{"STARTED", "APPLIED", "FAILED"}) {
		t.Fatalf("reports %v", rs)
	}
	if f := rs[2]; !strings.Contains(f.msg, "tunnel-protocol") || !strings.Contains(f.msg, "rolled back to Helm revision 1") || f.before != 1 || f.after != 3 {
		t.Errorf("FAILED report %q, revisions %d->%d", f.msg, f.before, f.after)
	}
	hs := e.history()
	if len(hs) != 3 || hs[2].Info.Description != "Rollback to 1" {
		t.Fatalf("history: %d revisions", len(hs))
	}
	if got := e.config(); !maps.Equal(got, configBefore) {
		t.Errorf("cilium-config not back: %v", diffConfig(got, configBefore))
	}
	kp := e.ds("kube-proxy")
	if _, parked := kp.Spec.Template.Spec.NodeSelector[ParkLabel]; parked || !dsReady(kp) || kp.Status.NumberReady != 1 {
		t.Errorf("kube-proxy not un-parked: %v %s", kp.Spec.Template.Spec.NodeSelector, dsStatus(kp))
	}
}
