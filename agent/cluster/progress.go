package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Names of the objects the driver keeps its progress in, in Config.Namespace.
const (
	ProgressConfigMap     = "ebbflow-agent-progress"
	MeasurementsConfigMap = "ebbflow-agent-measurements"

	progressKey     = "progress.json"
	assignmentKey   = "assignment.json"
	measurementsKey = "measurements.pb"
	// maxStoredMeasurements bounds what is kept for re-reporting (a ConfigMap holds 1 MiB).
	maxStoredMeasurements = 900 << 10
)

// Actions recorded in Progress.Action.
const (
	actionApply    = "apply"
	actionRollback = "rollback"
)

// Steps recorded in Progress.Step, in the order they complete. A step is recorded once it is
// done, except the write-ahead steps (Upgrading, RollingBack), recorded just before the Helm
// call so a restarted agent knows to look at the release history. Config.AfterStep is called
// after each one is recorded.
const (
	StepStarted     = "started"
	StepPreflight   = "preflight"
	StepUpgrading   = "upgrading"
	StepUpgraded    = "upgraded"
	StepRestarted   = "restarted"
	StepPolicies    = "policies"
	StepParked      = "parked"
	StepApplied     = "applied"
	StepVerified    = "verified"
	StepMeasured    = "measured"
	StepDone        = "done"
	StepUnparked    = "unparked"
	StepRollingBack = "rolling-back"
	StepRolledBack  = "rolled-back"
)

// Progress is what the driver records in the cluster: the assignment in hand, how far it got,
// and what it changed outside Helm (parked DaemonSets, applied policies), which outlives the
// assignment until a rollback undoes it.
type Progress struct {
	AssignmentID    string `json:"assignmentId,omitempty"`
	RolloutID       string `json:"rolloutId,omitempty"`
	Cluster         string `json:"cluster,omitempty"`
	ProfileRevision uint64 `json:"profileRevision,omitempty"`
	Action          string `json:"action,omitempty"`
	Phase           string `json:"phase,omitempty"`
	Step            string `json:"step,omitempty"`
	// HelmBefore is the release revision before the step; HelmAfter after it.
	HelmBefore int32 `json:"helmBefore,omitempty"`
	HelmAfter  int32 `json:"helmAfter,omitempty"`
	// RollbackTo is the revision a rollback returns to.
	RollbackTo int32 `json:"rollbackTo,omitempty"`
	// ConfigBefore is a hash of cilium-config's data and CiliumGeneration the cilium
	// DaemonSet's generation, both taken before the Helm call: a changed config with an
	// unchanged pod template means the agents must be restarted.
	ConfigBefore     string `json:"configBefore,omitempty"`
	CiliumGeneration int64  `json:"ciliumGeneration,omitempty"`
	// Done is set with the final Status (a PhaseStatus name), Message and Preflight reasons.
	Done      bool      `json:"done,omitempty"`
	Status    string    `json:"status,omitempty"`
	Message   string    `json:"message,omitempty"`
	Preflight []string  `json:"preflight,omitempty"`
	Updated   time.Time `json:"updated"`

	// Parked lists every DaemonSet the driver parked and has not un-parked yet.
	Parked []ParkedDaemonSet `json:"parked,omitempty"`
	// Policies lists the objects the driver applied with server-side apply and has not deleted.
	Policies []AppliedObject `json:"policies,omitempty"`
	// PreRollout is the release revision before each rollout's first change, by rollout id.
	PreRollout map[string]int32 `json:"preRollout,omitempty"`
	// KprBatches lists the node batches of node-by-node kpr phases, from the moment their nodes
	// are chosen until they are moved back, in the order they were moved.
	KprBatches []KprBatch `json:"kprBatches,omitempty"`
	// KprPlans holds each rollout's batch plan, fixed when its first batch started.
	KprPlans map[string]KprPlan `json:"kprPlans,omitempty"`
	// KprExcluded lists the DaemonSets kept off moved nodes by a node affinity.
	KprExcluded []ExcludedDaemonSet `json:"kprExcluded,omitempty"`
}

// ParkedDaemonSet is a DaemonSet parked with a nodeSelector that matches no node.
type ParkedDaemonSet struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// NodeSelector is the DaemonSet's pod nodeSelector before parking.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// HelmBefore is the release revision before the step that parked it: a rollback to that
	// revision or an earlier one un-parks it.
	HelmBefore   int32  `json:"helmBefore"`
	AssignmentID string `json:"assignmentId"`
}

// AppliedObject is an object the driver applied (a CiliumNetworkPolicy of the l7 phase).
type AppliedObject struct {
	APIVersion   string `json:"apiVersion"`
	Kind         string `json:"kind"`
	Namespace    string `json:"namespace,omitempty"`
	Name         string `json:"name"`
	HelmBefore   int32  `json:"helmBefore"`
	AssignmentID string `json:"assignmentId"`
}

// progressStore reads and writes the progress ConfigMap with optimistic concurrency.
type progressStore struct {
	d  *Driver
	rv string // resourceVersion last read or written; "" when the ConfigMap does not exist
}

// load returns the recorded progress and assignment (nil when none is recorded).
func (s *progressStore) load(ctx context.Context) (*Progress, *ebbflowv1.Assignment, error) {
	cm, err := s.d.cs.CoreV1().ConfigMaps(s.d.cfg.Namespace).Get(ctx, ProgressConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.rv = ""
		return &Progress{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("progress: %w", err)
	}
	s.rv = cm.ResourceVersion
	p := &Progress{}
	if raw := cm.Data[progressKey]; raw != "" {
		if err := json.Unmarshal([]byte(raw), p); err != nil {
			return nil, nil, fmt.Errorf("progress: %s/%s: %w", s.d.cfg.Namespace, ProgressConfigMap, err)
		}
	}
	var a *ebbflowv1.Assignment
	if raw := cm.Data[assignmentKey]; raw != "" {
		a = &ebbflowv1.Assignment{}
		if err := protojson.Unmarshal([]byte(raw), a); err != nil {
			return nil, nil, fmt.Errorf("progress: assignment: %w", err)
		}
	}
	return p, a, nil
}

// save writes p (and a, when not nil) and fails on a concurrent change.
func (s *progressStore) save(ctx context.Context, p *Progress, a *ebbflowv1.Assignment) error {
	p.Updated = time.Now().UTC()
	pb, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	cms := s.d.cs.CoreV1().ConfigMaps(s.d.cfg.Namespace)
	if s.rv == "" {
		if err := s.d.ensureNamespace(ctx); err != nil {
			return err
		}
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ProgressConfigMap, Namespace: s.d.cfg.Namespace, Labels: managedLabels()},
			Data:       map[string]string{progressKey: string(pb)},
		}
		if a != nil {
			ab, err := protojson.Marshal(a)
			if err != nil {
				return err
			}
			cm.Data[assignmentKey] = string(ab)
		}
		out, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("progress: create: %w", err)
		}
		s.rv = out.ResourceVersion
		return nil
	}
	cm, err := cms.Get(ctx, ProgressConfigMap, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	if cm.ResourceVersion != s.rv {
		return fmt.Errorf("progress: %s/%s changed under the driver (another agent?)", s.d.cfg.Namespace, ProgressConfigMap)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[progressKey] = string(pb)
	if a != nil {
		ab, err := protojson.Marshal(a)
		if err != nil {
			return err
		}
		cm.Data[assignmentKey] = string(ab)
	}
	out, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("progress: update: %w", err)
	}
	s.rv = out.ResourceVersion
	return nil
}

// saveMeasurements keeps the last reported measurements for re-reporting, when they fit.
func (d *Driver) saveMeasurements(ctx context.Context, assignmentID string, ms []*ebbflowv1.Measurement) error {
	b, err := proto.Marshal(&ebbflowv1.ReportMeasurementRequest{
		Ref: &ebbflowv1.ReportRef{AssignmentId: assignmentID}, Measurements: ms,
	})
	if err != nil {
		return err
	}
	if len(b) > maxStoredMeasurements {
		d.log.Warn("measurements too large to keep for re-reporting", "bytes", len(b))
		b = nil
	}
	cms := d.cs.CoreV1().ConfigMaps(d.cfg.Namespace)
	cm, err := cms.Get(ctx, MeasurementsConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: MeasurementsConfigMap, Namespace: d.cfg.Namespace, Labels: managedLabels()},
			BinaryData: map[string][]byte{measurementsKey: b},
		}
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	cm.BinaryData = map[string][]byte{measurementsKey: b}
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

// loadMeasurements returns the measurements kept for assignmentID (nil when none).
func (d *Driver) loadMeasurements(ctx context.Context, assignmentID string) []*ebbflowv1.Measurement {
	cm, err := d.cs.CoreV1().ConfigMaps(d.cfg.Namespace).Get(ctx, MeasurementsConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	var req ebbflowv1.ReportMeasurementRequest
	if err := proto.Unmarshal(cm.BinaryData[measurementsKey], &req); err != nil || req.GetRef().GetAssignmentId() != assignmentID {
		return nil
	}
	return req.GetMeasurements()
}

func (d *Driver) ensureNamespace(ctx context.Context) error {
	_, err := d.cs.CoreV1().Namespaces().Get(ctx, d.cfg.Namespace, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		// Without the right to read namespaces, assume it exists: the ConfigMap call will tell.
		return nil
	}
	_, err = d.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: d.cfg.Namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", d.cfg.Namespace, err)
	}
	return nil
}

func managedLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/managed-by": "ebbflow-agent"}
}
