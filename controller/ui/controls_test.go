package ui_test

import (
	"context"
	"fmt"
	"testing"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/proto"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// confirmAction clicks a control, checks that its confirmation names the object, confirms, and
// waits for the API's answer on the page.
func confirmAction(t *testing.T, ctx context.Context, button, question, result string) {
	t.Helper()
	run(t, ctx, "click "+button, chromedp.WaitVisible(chromedp.CSS(button)), chromedp.Click(chromedp.CSS(button)))
	waitJS(t, ctx, "the confirmation "+question, fmt.Sprintf(`(document.querySelector('[data-testid=confirm-dialog]')?.textContent ?? "").includes(%q)`, question))
	run(t, ctx, "confirm "+question, chromedp.Click(chromedp.CSS(`[data-testid=confirm]`)))
	waitJS(t, ctx, "the result "+result, fmt.Sprintf(`(document.querySelector('[data-testid=action-result]')?.textContent ?? "").includes(%q)`, result))
}

// An operator drives a rollout from the page: opens the approval gate of a wave, skips a
// cluster, cancels a confirmation (nothing happens), and aborts; after each, the API says so.
// The fleet page filters by a label selector and refuses a bad one with the API's reason.
func TestDashboardControls(t *testing.T) {
	ctx := browser(t)
	sec := controllertest.NewSecurity(t)
	n := controllertest.Start(t, controllertest.Options{Security: sec, Config: fastEngine})
	hc := sec.Client(nil)
	createProfile(t, ebbflowv1connect.NewProfileServiceClient(hc, n.URL, sec.Bearer("admin")))
	rollouts := ebbflowv1connect.NewRolloutServiceClient(hc, n.URL, sec.Bearer("operator"))
	hold := make(chan struct{})
	defer close(hold)
	reached := make(chan string, 8)
	controllertest.StartSecureFleet(t, sec, []string{n.URL}, 3, nil, func(a *controllertest.Agent) {
		if a.Name != "c-00" { // the canary completes; wave 1 stays in l7
			a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_L7, hold, reached
		}
	})
	s := spec(1, 2)
	s.GetAutomatic().Gates = proto.Clone(s.GetAutomatic().GetGates()).(*ebbflowv1.WaveGates) // the canary's stays open
	s.GetAutomatic().Gates.RequireApproval = true
	if _, err := rollouts.CreateRollout(context.Background(), connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "gated", Spec: s})); err != nil {
		t.Fatal(err)
	}
	get := func() *ebbflowv1.Rollout {
		t.Helper()
		res, err := rollouts.GetRollout(context.Background(), connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "gated"}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetRollout()
	}

	op := tab(t, ctx)
	watchCSP(t, op)
	signIn(t, op, n.URL, sec.Tokens["operator"], "operator (operator)")
	goTo(t, op, "#/rollouts/gated")
	waitJS(t, op, "the approval gate", `document.querySelector('[data-testid=rollout-state]')?.textContent === "waiting_for_approval"`)
	confirmAction(t, op, `button[data-action="approve"]`, "Approve wave", "Approved wave")
	// The engine starts the approved wave at its next step: both of its clusters reach l7.
	for range 2 {
		reach(t, reached, "wave 1's clusters to start after the approval")
	}
	if st := get().GetWaves()[1].GetState(); st != ebbflowv1.WaveState_WAVE_STATE_PROGRESSING {
		t.Fatalf("after the approval wave 1 is %v", st)
	}

	// A cancelled confirmation changes nothing.
	run(t, op, "click skip", chromedp.Click(chromedp.CSS(`button[data-action="skip"][data-cluster="c-02"]`)))
	waitJS(t, op, "the skip confirmation", `(document.querySelector('[data-testid=confirm-dialog]')?.textContent ?? "").includes("Skip cluster c-02 in rollout gated?")`)
	run(t, op, "cancel", chromedp.Click(chromedp.CSS(`[data-testid=cancel]`)))
	for _, w := range get().GetWaves() {
		for _, c := range w.GetClusters() {
			if c.GetState() == ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SKIPPED {
				t.Fatalf("%s skipped after a cancelled confirmation", c.GetCluster())
			}
		}
	}

	confirmAction(t, op, `button[data-action="skip"][data-cluster="c-02"]`, "Skip cluster c-02 in rollout gated?", "Skipped c-02 in gated")
	if c := get().GetWaves()[1].GetClusters()[1]; c.GetCluster() != "c-02" || c.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SKIPPED {
		t.Fatalf("after the skip: %s %v", c.GetCluster(), c.GetState())
	}
	waitJS(t, op, "c-02 skipped on the page", `document.querySelector('[data-cluster="c-02"]')?.dataset.state === "skipped"`)

	confirmAction(t, op, `button[data-action="abort"]`, "Abort rollout gated?", "Aborted gated")
	if st := get().GetState(); st != ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED {
		t.Fatalf("after the abort the API says %v", st)
	}
	waitJS(t, op, "aborted on the page, no controls left", `document.querySelector('[data-testid=rollout-state]')?.textContent === "aborted" && !document.querySelector('button[data-action="pause"], button[data-action="abort"]')`)

	goTo(t, op, "#/fleet")
	waitJS(t, op, "the fleet", `document.querySelectorAll('tr[data-cluster]').length === 3`)
	run(t, op, "filter", chromedp.SendKeys(chromedp.CSS("#selector"), "order in (00,02)"), chromedp.Click(chromedp.CSS("#apply-selector")))
	waitJS(t, op, "the filtered fleet", `[...document.querySelectorAll('tr[data-cluster]')].map(r => r.dataset.cluster).join() === "c-00,c-02"`)
	run(t, op, "bad filter", chromedp.SendKeys(chromedp.CSS("#selector"), " ,,("), chromedp.Click(chromedp.CSS("#apply-selector")))
	waitJS(t, op, "the selector's error", `(document.querySelector('[data-testid=error]')?.textContent ?? "").includes("selector")`)
	noCSPViolations(t, op)
}
