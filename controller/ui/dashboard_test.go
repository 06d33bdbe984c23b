package ui_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

func fastEngine(c *controller.Config) { c.EngineInterval = 20 * time.Millisecond }

// createProfile stores the bare-metal example profile through the API.
func createProfile(t *testing.T, c ebbflowv1connect.ProfileServiceClient) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/profiles/bare-metal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name, spec, err := profile.DecodeYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateProfile(context.Background(), connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: name, Spec: spec})); err != nil {
		t.Fatal(err)
	}
}

// spec is a rollout of the bare-metal profile: a canary of canary clusters, then waves of
// size; a cluster that regresses is rolled back by itself (one failure allowed per wave).
func spec(canary, size int32) *ebbflowv1.RolloutSpec {
	gates := &ebbflowv1.WaveGates{MaxFailures: &ebbflowv1.WaveGates_MaxFailuresCount{MaxFailuresCount: 1}, SoakTime: durationpb.New(50 * time.Millisecond)}
	return &ebbflowv1.RolloutSpec{
		Profile: "bare-metal", ClusterSelector: "env=prod", SortLabel: "order",
		FailurePolicy: ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS,
		Waves: &ebbflowv1.RolloutSpec_Automatic{Automatic: &ebbflowv1.AutomaticWaves{
			CanaryCount: canary, Size: &ebbflowv1.AutomaticWaves_WaveSize{WaveSize: size}, CanaryGates: gates, Gates: gates,
		}},
		PhaseTimeout: durationpb.New(10 * time.Minute),
	}
}

// The dashboard against a real controller (TLS, tokens) and scripted agents, in Chromium: an
// operator signs in, watches a cluster change phase live when its agent reports, sees the
// regressing cluster's delta and its latency plot (checked by the plotted points), pauses the
// rollout (the API then says PAUSED); a viewer sees the same rollout and no controls. No
// page breaks the Content-Security-Policy.
func TestDashboard(t *testing.T) {
	ctx := browser(t)
	sec := controllertest.NewSecurity(t)
	// People sign in with the group's static tokens or with JWTs of the configured issuer.
	idp, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec.JWT = &controller.JWTConfig{Issuer: "https://idp.example.test", Audience: "ebbflow", Key: &idp.PublicKey}
	viewerJWT, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": "https://idp.example.test", "aud": "ebbflow", "sub": "dana", "ebbflow_role": "viewer",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(idp)
	if err != nil {
		t.Fatal(err)
	}
	n := controllertest.Start(t, controllertest.Options{Security: sec, Config: fastEngine})
	hc := sec.Client(nil)
	createProfile(t, ebbflowv1connect.NewProfileServiceClient(hc, n.URL, sec.Bearer("admin")))
	rollouts := ebbflowv1connect.NewRolloutServiceClient(hc, n.URL, sec.Bearer("operator"))

	// c-00 is the canary and waits before reporting l7 measured; in wave 1, c-02 regresses
	// from kpr on and c-01 waits before reporting xdp measured, so the rollout is still
	// running when the operator pauses it.
	holdCanary, holdWave := make(chan struct{}), make(chan struct{})
	reached := make(chan string, 16)
	controllertest.StartSecureFleet(t, sec, []string{n.URL}, 3, map[string]ebbflowv1.Phase{"c-02": ebbflowv1.Phase_PHASE_KPR}, func(a *controllertest.Agent) {
		switch a.Name {
		case "c-00":
			a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_L7, holdCanary, reached
		case "c-01":
			a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_XDP, holdWave, reached
		}
	})
	defer close(holdWave)
	if _, err = rollouts.CreateRollout(context.Background(), connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "dash", Spec: spec(1, 2)})); err != nil {
		t.Fatal(err)
	}

	op := tab(t, ctx)
	watchCSP(t, op)
	signIn(t, op, n.URL, sec.Tokens["operator"], "operator (operator)")
	if href := eval[string](t, op, `location.href`); strings.Contains(href, sec.Tokens["operator"]) {
		t.Fatalf("the token is in the URL: %s", href)
	}
	if c := eval[string](t, op, `document.cookie`); c != "" {
		t.Fatalf("the page set cookies: %q", c)
	}
	goTo(t, op, "#/rollouts")
	waitJS(t, op, "the rollout in the list", `document.querySelector('tr[data-rollout="dash"]') !== null`)

	// Live: the canary sits in l7 (its agent holds the report), then moves on when it reports.
	goTo(t, op, "#/rollouts/dash")
	waitJS(t, op, "the canary measuring l7", `(() => { const c = document.querySelector('[data-cluster="c-00"]'); return c && c.dataset.phase === "l7" && c.dataset.state === "measuring"; })()`)
	messages := eval[float64](t, op, `window.__ebbflow.messages`)
	close(holdCanary)
	waitJS(t, op, "the canary past l7 without a reload", `(() => { const c = document.querySelector('[data-cluster="c-00"]'); return c && c.dataset.phase !== "l7"; })()`)
	if got := eval[float64](t, op, `window.__ebbflow.messages`); got <= messages {
		t.Fatalf("stream messages %v -> %v: the change did not come over the stream", messages, got)
	}

	// The regression: c-02's kpr is 40% slower; the judge fails it and rolls it back.
	waitJS(t, op, "c-02 regressed", `document.querySelector('[data-cluster="c-02"]')?.dataset.verdict === "regression"`)
	delta := eval[string](t, op, `document.querySelector('[data-cluster="c-02"] [data-testid=p99-delta]')?.textContent ?? ""`)
	if v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(delta, "+"), "%"), 64); err != nil || v < 20 || v > 60 {
		t.Fatalf("c-02's p99 delta shows %q, want about +40%%", delta)
	}

	// Its latency plot: baseline, l7 and kpr, kpr's median about 1.4 times the baseline's.
	goTo(t, op, "#/rollouts/dash/clusters/c-02")
	waitJS(t, op, "the latency plot", `(() => { const p = document.querySelector('[data-testid=latency-plot]'); return p && p.querySelector('canvas') && (p.dataset.series ?? "").includes('"kpr"'); })()`)
	lines := map[string]series{}
	for _, s := range plotted(t, op) {
		lines[s.Label] = s
	}
	base, kpr := lines["baseline"], lines["kpr"]
	if len(base.Points) < 20 || len(kpr.Points) != len(base.Points) || lines["l7"].Points == nil {
		t.Fatalf("plotted %d series: baseline %d points, l7 %d, kpr %d", len(lines), len(base.Points), len(lines["l7"].Points), len(kpr.Points))
	}
	if r := kpr.at(0.5) / base.at(0.5); r < 1.3 || r > 1.5 {
		t.Fatalf("kpr median %.3f ms / baseline median %.3f ms = %.2f, want about 1.4", kpr.at(0.5), base.at(0.5), r)
	}
	waitJS(t, op, "the cluster's timeline", `document.querySelectorAll('[data-testid=timeline] tr').length > 3`)
	screenshot(t, op, "dashboard-cluster")

	// Pause, as the operator, after confirming.
	goTo(t, op, "#/rollouts/dash")
	reach(t, reached, "c-01 to hold in xdp") // the rollout runs until the pause
	run(t, op, "pause", chromedp.WaitVisible(chromedp.CSS(`button[data-action="pause"]`)), chromedp.Click(chromedp.CSS(`button[data-action="pause"]`)))
	waitJS(t, op, "the confirmation", `(document.querySelector('[data-testid=confirm-dialog]')?.textContent ?? "").includes("Pause rollout dash?")`)
	run(t, op, "confirm", chromedp.Click(chromedp.CSS(`[data-testid=confirm]`)))
	waitJS(t, op, "the result", `(document.querySelector('[data-testid=action-result]')?.textContent ?? "").includes("Paused dash")`)
	got, err := rollouts.GetRollout(context.Background(), connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "dash"}))
	if err != nil || got.Msg.GetRollout().GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED {
		t.Fatalf("after the pause the API says %v (%v), want PAUSED", got.Msg.GetRollout().GetState(), err)
	}
	waitJS(t, op, "the page says paused", `document.querySelector('[data-testid=rollout-state]')?.textContent === "paused"`)
	screenshot(t, op, "dashboard-rollout")
	waitJS(t, op, "the pause in the audit", `[...document.querySelectorAll('[data-testid=audit] tr')].some(r => r.textContent.includes("operator") && r.textContent.includes("Pause"))`)
	noCSPViolations(t, op)

	// A viewer, signed in with a JWT, sees the rollout and no controls at all.
	viewer := tab(t, ctx)
	watchCSP(t, viewer)
	signIn(t, viewer, n.URL, viewerJWT, "dana (viewer)")
	goTo(t, viewer, "#/rollouts/dash")
	waitJS(t, viewer, "the rollout", `document.querySelectorAll('[data-cluster]').length === 3 && document.querySelector('[data-testid=rollout-state]')?.textContent === "paused"`)
	if n := eval[float64](t, viewer, `document.querySelectorAll('[data-action], [data-testid=confirm-dialog]').length`); n != 0 {
		t.Fatalf("a viewer sees %v controls", n)
	}
	// Finding the clusters that matter: "problems only" leaves the regressed one, the filter is
	// in the URL (a reload keeps it), and clear brings every row back.
	run(t, viewer, "problems only", chromedp.Click(chromedp.CSS(`button[data-filter="problems"]`)))
	waitJS(t, viewer, "only c-02", `[...document.querySelectorAll('tr[data-cluster]')].map(r => r.dataset.cluster).join() === "c-02"`)
	if h := eval[string](t, viewer, `location.hash`); !strings.Contains(h, "problems=1") {
		t.Fatalf("the filter is not in the URL: %s", h)
	}
	eval[chromedp.Void](t, viewer, `location.reload()`)
	waitJS(t, viewer, "still only c-02 after a reload", `[...document.querySelectorAll('tr[data-cluster]')].map(r => r.dataset.cluster).join() === "c-02"`)
	run(t, viewer, "clear the filter", chromedp.Click(chromedp.CSS(`button[data-filter="clear"]`)))
	waitJS(t, viewer, "every cluster again", `document.querySelectorAll('tr[data-cluster]').length === 3`)
	goTo(t, viewer, "#/fleet")
	waitJS(t, viewer, "the fleet", `document.querySelectorAll('tr[data-cluster]').length === 3`)
	if row := eval[string](t, viewer, `document.querySelector('tr[data-cluster="c-01"]').textContent`); !strings.Contains(row, "dash") || !strings.Contains(row, "6.8.0-45-generic") {
		t.Fatalf("the fleet's c-01 row %q does not name its rollout and kernel", row)
	}
	noCSPViolations(t, viewer)
}
