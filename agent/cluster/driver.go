package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/agent/probe"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// Defaults of Config.
const (
	DefaultNamespace       = "ebbflow-system"
	DefaultCiliumNamespace = "kube-system"
	DefaultWaitTimeout     = 5 * time.Minute
)

// Names of Cilium's objects the driver reads and restarts, in Config.CiliumNamespace.
const (
	ciliumDaemonSet = "cilium"
	ciliumConfigMap = "cilium-config"
)

// Errors of the driver.
var (
	// ErrNoRelease: the cluster has no Cilium Helm release to tune (the driver never installs
	// Cilium).
	ErrNoRelease = errors.New("no Cilium Helm release")
	// ErrStopped wraps an error returned by Config.AfterStep: the driver stopped at once, as if
	// the process had died there, leaving its progress for Resume.
	ErrStopped = errors.New("driver stopped")
	// ErrReportRejected: the controller refused a report (stale or foreign assignment).
	ErrReportRejected = errors.New("report rejected by the controller")
)

// Config wires a Driver.
type Config struct {
	// RESTConfig reaches the cluster's API server (required).
	RESTConfig *rest.Config
	// Namespace holds the progress ConfigMaps (default ebbflow-system; created when missing).
	Namespace string
	// CiliumNamespace holds cilium-config and the cilium DaemonSet (default kube-system).
	CiliumNamespace string
	// Chart gets the chart a profile names (default: a Charts for local paths, https
	// repositories and oci:// registries).
	Chart ChartLoader
	// WaitTimeout bounds each wait for a DaemonSet and each Helm call (default 5 minutes).
	WaitTimeout time.Duration
	// NICDriverLabel is the node label naming the NIC driver (default agent.DefaultNICDriverLabel).
	NICDriverLabel string
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// ProbeOptions turns an assignment's probe settings into probe options (default
	// probe.OptionsFromSettings). The same settings are used for baseline and every phase.
	ProbeOptions func(*ebbflowv1.ProbeSettings) probe.Options
	// MaxHistory is Helm's --history-max for the driver's upgrades and rollbacks (0: unlimited).
	MaxHistory int
	// AfterStep, when set, is called after each step is recorded in the progress ConfigMap
	// (see the Step constants). An error stops the driver right there, as if the process had
	// been killed: no rollback, no report; Execute and Resume return it wrapped in ErrStopped.
	// Tests use it to simulate a crash after every step.
	AfterStep func(step string) error
}

// Driver runs assignments on one cluster. Execute and Resume are serialised: one runs at a time.
type Driver struct {
	cfg Config
	cs  kubernetes.Interface
	dyn dynamic.Interface
	log *slog.Logger

	mu sync.Mutex // held by Execute and Resume

	// Handler's runs.
	hmu     sync.Mutex
	base    context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	running *handlerRun
}

// New checks cfg, fills its defaults and returns a Driver.
func New(cfg Config) (*Driver, error) {
	if cfg.RESTConfig == nil {
		return nil, errors.New("cluster: Config.RESTConfig is required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.CiliumNamespace == "" {
		cfg.CiliumNamespace = DefaultCiliumNamespace
	}
	if cfg.Chart == nil {
		cfg.Chart = &Charts{}
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = DefaultWaitTimeout
	}
	if cfg.NICDriverLabel == "" {
		cfg.NICDriverLabel = agent.DefaultNICDriverLabel
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ProbeOptions == nil {
		cfg.ProbeOptions = probe.OptionsFromSettings
	}
	cs, err := kubernetes.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	base, stop := context.WithCancel(context.Background())
	return &Driver{cfg: cfg, cs: cs, dyn: dyn, log: cfg.Logger, base: base, stop: stop}, nil
}

// Close cancels the runs started by Handler and waits for them to stop. Their progress stays
// recorded for Resume.
func (d *Driver) Close() {
	d.hmu.Lock()
	d.stop()
	d.hmu.Unlock()
	d.wg.Wait()
}

// Inventory is agent.CollectInventory plus the Cilium Helm release (release "cilium" in the
// Cilium namespace): chart version, current user-supplied values and revision.
func (d *Driver) Inventory(ctx context.Context) (*ebbflowv1.Inventory, error) {
	return d.inventory(ctx, releaseRef{name: profile.DefaultReleaseName, namespace: d.cfg.CiliumNamespace})
}

func (d *Driver) inventory(ctx context.Context, rel releaseRef) (*ebbflowv1.Inventory, error) {
	inv, err := agent.CollectInventory(ctx, d.cs, agent.InventoryOptions{
		CiliumNamespace: d.cfg.CiliumNamespace, NICDriverLabel: d.cfg.NICDriverLabel,
	})
	if err != nil {
		return nil, err
	}
	last, err := d.lastRelease(rel)
	if errors.Is(err, ErrNoRelease) {
		return inv, nil
	}
	if err != nil {
		return nil, err
	}
	inv.HelmRevision = int32(last.Version)
	if last.Chart != nil && last.Chart.Metadata != nil {
		inv.CiliumChartVersion = last.Chart.Metadata.Version
	}
	vals := last.Config
	if vals == nil {
		vals = map[string]any{}
	}
	if inv.HelmValues, err = structpb.NewStruct(normalizeForStruct(vals)); err != nil {
		return nil, fmt.Errorf("helm values of %s: %w", rel, err)
	}
	return inv, nil
}

// normalizeForStruct turns the value types YAML decoding yields into ones structpb accepts.
func normalizeForStruct(v map[string]any) map[string]any {
	n, err := normalize(v)
	if err != nil {
		return map[string]any{}
	}
	return n
}

// releaseOf is the Helm release a profile tunes.
func releaseOf(spec *ebbflowv1.ProfileSpec) releaseRef {
	r := releaseRef{name: spec.GetChart().GetReleaseName(), namespace: spec.GetChart().GetNamespace()}
	if r.name == "" {
		r.name = profile.DefaultReleaseName
	}
	if r.namespace == "" {
		r.namespace = profile.DefaultNamespace
	}
	return r
}

// Execute runs one assignment: APPLY of a.Phase, or ROLLBACK to a.RollbackToHelmRevision (the
// rollout's pre-rollout revision when 0); IDLE and unspecified do nothing.
//
// It is idempotent by assignment id: an assignment already done is only reported again, and
// one interrupted (the agent died) is resumed from its last recorded step. An interrupted step
// of another assignment is first finished (APPLY) or superseded (ROLLBACK undoes it too).
//
// Reports go to r in order: STARTED, APPLIED (after the Helm upgrade, the policies and the
// parking), VERIFIED (DaemonSet rolled out, cilium-config checked), the measurements, MEASURED.
// A failing preflight reports PREFLIGHT_FAILED with the reasons and changes nothing (Execute
// returns nil). Any other failure rolls the step back to the revision before it, un-parks and
// deletes what the step parked and applied, reports FAILED with the reason, and returns it.
// An APPLY whose measure_window is above 1 (the judge asked for another window of a phase
// already applied) only verifies and measures: VERIFIED, the measurements, MEASURED.
// A rollback reports STARTED then ROLLED_BACK (or FAILED).
func (d *Driver) Execute(ctx context.Context, a *ebbflowv1.Assignment, r Reporter) error {
	switch a.GetAction() {
	case ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK:
	default:
		return nil
	}
	if a.GetId() == "" {
		return errors.New("cluster: assignment without id")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &progressStore{d: d}
	p, prev, err := st.load(ctx)
	if err != nil {
		return err
	}
	if p.AssignmentID == a.GetId() {
		if p.Done {
			return d.rereport(ctx, p, a, r)
		}
		d.log.Info("resuming assignment", "id", a.GetId(), "step", p.Step)
		return d.run(ctx, st, p, a, r)
	}
	if p.AssignmentID != "" && !p.Done {
		if prev == nil {
			d.log.Warn("interrupted assignment without its record; superseding it", "id", p.AssignmentID, "step", p.Step)
		} else if a.GetAction() == ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY {
			d.log.Info("finishing an interrupted assignment first", "id", p.AssignmentID, "step", p.Step)
			if err := d.run(ctx, st, p, prev, r); isStop(ctx, err) {
				return err
			}
			if p, _, err = st.load(ctx); err != nil {
				return err
			}
		} else {
			d.log.Info("rollback supersedes an interrupted assignment", "id", p.AssignmentID, "step", p.Step)
		}
	}
	np := &Progress{
		AssignmentID: a.GetId(), RolloutID: a.GetRolloutId(), Cluster: a.GetCluster(),
		ProfileRevision: a.GetProfileRevision(), Phase: profile.PhaseName(a.GetPhase()),
		Action: actionApply, Parked: p.Parked, Policies: p.Policies, PreRollout: p.PreRollout,
		KprBatches: p.KprBatches, KprPlans: p.KprPlans, KprExcluded: p.KprExcluded,
	}
	if a.GetAction() == ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK {
		np.Action = actionRollback
	} else if a.GetMeasureWindow() > 1 {
		// Another measurement window of a phase an earlier assignment applied and verified:
		// nothing to change, only verify and measure. HelmBefore stays 0, so a failure undoes
		// nothing here; the controller rolls the cluster back as a whole.
		np.Step = StepApplied
	}
	if err := st.save(ctx, np, a); err != nil {
		return err
	}
	return d.run(ctx, st, np, a, r)
}

// Resume finishes or rolls back the step recorded in the progress ConfigMap when the previous
// agent stopped in the middle of an assignment. The agent calls it once at start, before it
// follows the assignment stream. Nothing recorded, or a finished assignment: nothing to do.
func (d *Driver) Resume(ctx context.Context, r Reporter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &progressStore{d: d}
	p, a, err := st.load(ctx)
	if err != nil {
		return err
	}
	if p.AssignmentID == "" || p.Done || a == nil {
		return nil
	}
	d.log.Info("resuming interrupted assignment", "id", p.AssignmentID, "action", p.Action, "phase", p.Phase, "step", p.Step)
	return d.run(ctx, st, p, a, r)
}

// Progress returns what the driver has recorded in the cluster.
func (d *Driver) Progress(ctx context.Context) (*Progress, error) {
	p, _, err := (&progressStore{d: d}).load(ctx)
	return p, err
}

// run dispatches to the flow of the recorded action.
func (d *Driver) run(ctx context.Context, st *progressStore, p *Progress, a *ebbflowv1.Assignment, r Reporter) error {
	x := &execution{
		d: d, st: st, p: p, a: a, r: r,
		rel: releaseOf(a.GetProfile()),
		ref: &ebbflowv1.ReportRef{
			Cluster: a.GetCluster(), AssignmentId: a.GetId(),
			ProfileRevision: a.GetProfileRevision(), Phase: a.GetPhase(),
		},
		log: d.log.With("assignment", a.GetId(), "phase", profile.PhaseName(a.GetPhase())),
	}
	var err error
	if p.Action == actionRollback {
		x.order = rollbackOrder
		err = x.rollback(ctx)
	} else {
		x.order = applyOrder
		err = x.apply(ctx)
	}
	if err != nil {
		return err
	}
	if x.reportErr != nil {
		return fmt.Errorf("cluster: reports failed: %w", x.reportErr)
	}
	return nil
}

// rereport sends the final report of a finished assignment again (with its measurements when
// they were kept).
func (d *Driver) rereport(ctx context.Context, p *Progress, a *ebbflowv1.Assignment, r Reporter) error {
	ref := &ebbflowv1.ReportRef{Cluster: a.GetCluster(), AssignmentId: a.GetId(), ProfileRevision: a.GetProfileRevision(), Phase: a.GetPhase()}
	st := ebbflowv1.PhaseStatus(ebbflowv1.PhaseStatus_value[p.Status])
	if st == ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED {
		if ms := d.loadMeasurements(ctx, a.GetId()); len(ms) > 0 {
			if err := r.Measurements(ctx, ref, ms); err != nil {
				return err
			}
		}
	}
	return r.Status(ctx, ref, StatusReport{Status: st, Message: p.Message, HelmBefore: p.HelmBefore, HelmAfter: p.HelmAfter,
		Preflight: p.Preflight, KprBatch: batchStatus(p, a)})
}

// isStop reports whether err means the driver must stop without cleaning up: a cancelled
// context (the agent is shutting down or was superseded) or an AfterStep stop.
func isStop(ctx context.Context, err error) bool {
	return err != nil && (errors.Is(err, ErrStopped) || ctx.Err() != nil)
}
