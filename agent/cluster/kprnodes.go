package cluster

// The Kubernetes side of node-by-node kpr: CiliumNodeConfigs, node labels, the pods of a
// DaemonSet on given nodes, and the node affinity that keeps parked DaemonSets off moved nodes.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

var movedExclusion = corev1.NodeSelectorRequirement{Key: KprMovedLabel, Operator: corev1.NodeSelectorOpDoesNotExist}

// excludes reports whether the DaemonSet's every required node selector term excludes moved
// nodes.
func excludes(ds *appsv1.DaemonSet) bool {
	a := ds.Spec.Template.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		return false
	}
	for _, t := range terms {
		if !slices.ContainsFunc(t.MatchExpressions, func(r corev1.NodeSelectorRequirement) bool { return r.Key == KprMovedLabel }) {
			return false
		}
	}
	return true
}

// withExclusion is a copy of a with the moved-node exclusion ANDed into every required term
// (one term holding only it when there is none).
func withExclusion(a *corev1.Affinity) *corev1.Affinity {
	out := &corev1.Affinity{}
	if a != nil {
		out = a.DeepCopy()
	}
	if out.NodeAffinity == nil {
		out.NodeAffinity = &corev1.NodeAffinity{}
	}
	req := out.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if req == nil || len(req.NodeSelectorTerms) == 0 {
		out.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{movedExclusion}}},
		}
		return out
	}
	for i := range req.NodeSelectorTerms {
		t := &req.NodeSelectorTerms[i]
		if !slices.ContainsFunc(t.MatchExpressions, func(r corev1.NodeSelectorRequirement) bool { return r.Key == KprMovedLabel }) {
			t.MatchExpressions = append(t.MatchExpressions, movedExclusion)
		}
	}
	return out
}

// applyNodeConfig server-side applies the batch's CiliumNodeConfig.
func (d *Driver) applyNodeConfig(ctx context.Context, key string, defaults map[string]string, assignmentID string) error {
	def := map[string]any{}
	for k, v := range defaults {
		def[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumNodeConfig",
		"metadata": map[string]any{"name": cncName(key), "namespace": d.cfg.CiliumNamespace},
		"spec": map[string]any{
			"nodeSelector": map[string]any{"matchLabels": map[string]any{KprBatchLabel: key}},
			"defaults":     def,
		},
	}}
	if err := d.applyObject(ctx, u, assignmentID); err != nil {
		if _, merr := d.mapper(); merr == nil && strings.Contains(err.Error(), "no matches for kind") {
			return fmt.Errorf("CiliumNodeConfig (cilium.io/v2) is not served by the cluster: node-by-node kube-proxy replacement needs Cilium's CRDs (1.16 or later): %w", err)
		}
		return err
	}
	return nil
}

func (d *Driver) deleteNodeConfig(ctx context.Context, key string) error {
	err := d.dyn.Resource(cncResource).Namespace(d.cfg.CiliumNamespace).Delete(ctx, cncName(key), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete CiliumNodeConfig %s: %w", cncName(key), err)
	}
	return nil
}

// labelNodes sets key=value on each node; a node that is gone is skipped.
func (d *Driver) labelNodes(ctx context.Context, nodes []string, key, value string) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{key: value}}})
	return d.patchNodes(ctx, nodes, patch)
}

// unlabelNodes removes key from each node; a node that is gone is skipped.
func (d *Driver) unlabelNodes(ctx context.Context, nodes []string, key string) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{key: nil}}})
	return d.patchNodes(ctx, nodes, patch)
}

func (d *Driver) patchNodes(ctx context.Context, nodes []string, patch []byte) error {
	for _, n := range nodes {
		_, err := d.cs.CoreV1().Nodes().Patch(ctx, n, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
		if apierrors.IsNotFound(err) {
			d.log.Warn("node gone; skipped", "node", n)
			continue
		}
		if err != nil {
			return fmt.Errorf("label node %s: %w", n, err)
		}
	}
	return nil
}

// podsOn lists the pods of a DaemonSet on the given nodes.
func (d *Driver) podsOn(ctx context.Context, ns, name string, nodes []string) ([]corev1.Pod, error) {
	ds, err := d.cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, err
	}
	list, err := d.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if slices.Contains(nodes, p.Spec.NodeName) && metav1.IsControlledBy(&p, ds) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (d *Driver) ciliumPodUIDs(ctx context.Context, nodes []string) ([]string, error) {
	pods, err := d.podsOn(ctx, d.cfg.CiliumNamespace, ciliumDaemonSet, nodes)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pods {
		out = append(out, string(p.UID))
	}
	return out, nil
}

// deletePods deletes the Cilium pods with the given UIDs (a UID precondition: a newer pod of
// the same name is never deleted); gone ones are skipped.
func (d *Driver) deletePods(ctx context.Context, ns string, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	list, err := d.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range list.Items {
		if !slices.Contains(uids, string(p.UID)) {
			continue
		}
		uid := p.UID
		err := d.cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete pod %s/%s: %w", ns, p.Name, err)
		}
	}
	return nil
}

// waitCiliumReplaced waits until each node that exists runs a ready Cilium pod not in old.
func (d *Driver) waitCiliumReplaced(ctx context.Context, nodes, old []string) error {
	return d.pollNodes(ctx, fmt.Sprintf("new ready Cilium pods on %s", strings.Join(nodes, ", ")), func(ctx context.Context) (bool, error) {
		live, err := d.liveNodes(ctx, nodes)
		if err != nil {
			return false, err
		}
		pods, err := d.podsOn(ctx, d.cfg.CiliumNamespace, ciliumDaemonSet, live)
		if err != nil {
			return false, err
		}
		ready := map[string]bool{}
		for _, p := range pods {
			if !slices.Contains(old, string(p.UID)) && p.DeletionTimestamp == nil && podReady(&p) {
				ready[p.Spec.NodeName] = true
			}
		}
		return len(ready) == len(live), nil
	})
}

// waitPods waits until a DaemonSet has a ready pod on each node that exists (present) or no
// pod at all there (!present). A DaemonSet that does not exist has nothing to wait for.
func (d *Driver) waitPods(ctx context.Context, ns, name string, nodes []string, what string, present bool) error {
	return d.pollNodes(ctx, fmt.Sprintf("DaemonSet %s/%s pods %s on %s", ns, name, what, strings.Join(nodes, ", ")), func(ctx context.Context) (bool, error) {
		if _, err := d.cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return true, nil
		}
		live, err := d.liveNodes(ctx, nodes)
		if err != nil {
			return false, err
		}
		pods, err := d.podsOn(ctx, ns, name, live)
		if err != nil {
			return false, err
		}
		if !present {
			return len(pods) == 0, nil
		}
		ready := map[string]bool{}
		for _, p := range pods {
			if p.DeletionTimestamp == nil && podReady(&p) {
				ready[p.Spec.NodeName] = true
			}
		}
		return len(ready) == len(live), nil
	})
}

// liveNodes is the nodes of the list that still exist.
func (d *Driver) liveNodes(ctx context.Context, nodes []string) ([]string, error) {
	var out []string
	for _, n := range nodes {
		_, err := d.cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// pollNodes polls cond every 200 ms for at most Config.WaitTimeout.
func (d *Driver) pollNodes(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, d.cfg.WaitTimeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			last = err
			return false, nil //nolint:nilerr // transient API errors are retried until the timeout
		}
		return ok, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if last != nil {
			return fmt.Errorf("%s: not within %s: %w", what, d.cfg.WaitTimeout, last)
		}
		return fmt.Errorf("%s: not within %s", what, d.cfg.WaitTimeout)
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
