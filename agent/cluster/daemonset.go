package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// Keys the driver writes on objects.
const (
	// ParkLabel is the nodeSelector key that parks a DaemonSet: no node carries it.
	ParkLabel = "ebbflow.io/parked"
	// ParkedAnnotation on a parked DaemonSet holds its original nodeSelector as JSON, so the
	// DaemonSet itself also remembers how to un-park.
	ParkedAnnotation = "ebbflow.io/parked-node-selector"
	// RestartAnnotation on the Cilium pod template names the assignment that restarted the
	// agents (kubectl rollout restart uses a timestamp; an id makes a repeated restart a no-op).
	RestartAnnotation = "ebbflow.io/restarted-for"
)

// dsRolledOut is kubectl rollout status's test: the controller saw the current spec and every
// scheduled pod is updated and available.
func dsRolledOut(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return s.ObservedGeneration >= ds.Generation &&
		s.UpdatedNumberScheduled >= s.DesiredNumberScheduled &&
		s.NumberAvailable >= s.DesiredNumberScheduled
}

// dsReady: rolled out and every scheduled pod ready.
func dsReady(ds *appsv1.DaemonSet) bool {
	return dsRolledOut(ds) && ds.Status.NumberReady >= ds.Status.DesiredNumberScheduled
}

// dsParked: the controller saw the parking selector and no pod is left.
func dsParked(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return s.ObservedGeneration >= ds.Generation && s.DesiredNumberScheduled == 0 &&
		s.CurrentNumberScheduled == 0 && s.NumberMisscheduled == 0
}

func dsStatus(ds *appsv1.DaemonSet) string {
	if ds == nil {
		return "not seen"
	}
	s := ds.Status
	return fmt.Sprintf("generation %d observed %d, desired %d, current %d, updated %d, ready %d, available %d, misscheduled %d",
		ds.Generation, s.ObservedGeneration, s.DesiredNumberScheduled, s.CurrentNumberScheduled,
		s.UpdatedNumberScheduled, s.NumberReady, s.NumberAvailable, s.NumberMisscheduled)
}

// waitDaemonSet watches one DaemonSet until cond holds, for at most Config.WaitTimeout.
func (d *Driver) waitDaemonSet(ctx context.Context, ns, name, what string, cond func(*appsv1.DaemonSet) bool) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.WaitTimeout)
	defer cancel()
	client := d.cs.AppsV1().DaemonSets(ns)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return client.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return client.Watch(ctx, o)
		},
	}
	var last *appsv1.DaemonSet
	_, err := watchtools.UntilWithSync(ctx, lw, &appsv1.DaemonSet{}, nil, func(ev watch.Event) (bool, error) {
		if ev.Type == watch.Deleted {
			return false, fmt.Errorf("DaemonSet %s/%s was deleted", ns, name)
		}
		ds, ok := ev.Object.(*appsv1.DaemonSet)
		if !ok {
			return false, nil
		}
		last = ds
		return cond(ds), nil
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, watchtools.ErrWatchClosed) {
			if pctx := context.Cause(ctx); pctx != nil && !errors.Is(pctx, context.DeadlineExceeded) {
				return pctx
			}
			return fmt.Errorf("DaemonSet %s/%s not %s within %s (%s)", ns, name, what, d.cfg.WaitTimeout, dsStatus(last))
		}
		return fmt.Errorf("DaemonSet %s/%s not %s: %w", ns, name, what, err)
	}
	return nil
}

// restartDaemonSet is `kubectl rollout restart`: a pod template annotation change makes the
// controller replace every pod. It returns false when the template already carried value.
func (d *Driver) restartDaemonSet(ctx context.Context, ns, name, value string) (bool, error) {
	ds, err := d.cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	if ds.Spec.Template.Annotations[RestartAnnotation] == value {
		return false, nil
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{RestartAnnotation: value}},
	}}})
	_, err = d.cs.AppsV1().DaemonSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	return err == nil, err
}

// park adds the parking key to a DaemonSet's pod nodeSelector (the original keys stay) and
// records the original selector in an annotation, in one patch. Parking a parked DaemonSet
// changes nothing.
func (d *Driver) park(ctx context.Context, ns, name string) error {
	ds, err := d.cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if _, ok := ds.Spec.Template.Spec.NodeSelector[ParkLabel]; ok {
		return nil
	}
	orig, _ := json.Marshal(ds.Spec.Template.Spec.NodeSelector)
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{ParkedAnnotation: string(orig)}},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"nodeSelector": map[string]string{ParkLabel: "true"},
		}}},
	})
	_, err = d.cs.AppsV1().DaemonSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	return err
}

// unpark removes the parking key and the annotation. A DaemonSet that is gone or not parked is
// left alone.
func (d *Driver) unpark(ctx context.Context, ns, name string) (bool, error) {
	ds, err := d.cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, parked := ds.Spec.Template.Spec.NodeSelector[ParkLabel]
	_, annotated := ds.Annotations[ParkedAnnotation]
	if !parked && !annotated {
		return false, nil
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{ParkedAnnotation: nil}},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"nodeSelector": map[string]any{ParkLabel: nil},
		}}},
	})
	_, err = d.cs.AppsV1().DaemonSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	return true, err
}

// ciliumState is a hash of cilium-config's data and the cilium DaemonSet's generation (0 when
// the DaemonSet is missing).
func (d *Driver) ciliumState(ctx context.Context) (string, int64, error) {
	cfg, err := d.ciliumConfig(ctx)
	if err != nil {
		return "", 0, err
	}
	var gen int64
	ds, err := d.cs.AppsV1().DaemonSets(d.cfg.CiliumNamespace).Get(ctx, ciliumDaemonSet, metav1.GetOptions{})
	switch {
	case err == nil:
		gen = ds.Generation
	case !apierrors.IsNotFound(err):
		return "", 0, err
	}
	return hashConfig(cfg), gen, nil
}

// ciliumConfig returns the data of cilium-config (empty when it does not exist).
func (d *Driver) ciliumConfig(ctx context.Context) (map[string]string, error) {
	cm, err := d.cs.CoreV1().ConfigMaps(d.cfg.CiliumNamespace).Get(ctx, ciliumConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", d.cfg.CiliumNamespace, ciliumConfigMap, err)
	}
	return cm.Data, nil
}

func hashConfig(m map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(h, "%s\x00%s\x00", k, m[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// settle restarts the Cilium agents when the config changed under an unchanged pod template
// (rollOutCiliumPods is off by default, so a ConfigMap change alone restarts nothing), then
// waits until the DaemonSet has rolled out. restartID makes the restart idempotent.
func (d *Driver) settle(ctx context.Context, p *Progress, restartID string) error {
	ds, err := d.cs.AppsV1().DaemonSets(d.cfg.CiliumNamespace).Get(ctx, ciliumDaemonSet, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("DaemonSet %s/%s not found", d.cfg.CiliumNamespace, ciliumDaemonSet)
	}
	if err != nil {
		return err
	}
	cfg, err := d.ciliumConfig(ctx)
	if err != nil {
		return err
	}
	if hashConfig(cfg) != p.ConfigBefore && ds.Generation == p.CiliumGeneration {
		restarted, err := d.restartDaemonSet(ctx, d.cfg.CiliumNamespace, ciliumDaemonSet, restartID)
		if err != nil {
			return fmt.Errorf("restart %s/%s: %w", d.cfg.CiliumNamespace, ciliumDaemonSet, err)
		}
		if restarted {
			d.log.Info("restarting the Cilium agents: cilium-config changed", "daemonset", ciliumDaemonSet)
		}
	}
	return d.waitDaemonSet(ctx, d.cfg.CiliumNamespace, ciliumDaemonSet, "rolled out", dsRolledOut)
}
