package kubebox

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// KubeProxyDaemonSet is kube-system/kube-proxy the way kubeadm deploys it (host network,
// tolerates every taint, linux nodes only), for tests that park and unpark it.
func KubeProxyDaemonSet() *appsv1.DaemonSet {
	labels := map[string]string{"k8s-app": "kube-proxy"}
	one := intstr.FromInt32(1)
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system", Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type:          appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork:       true,
					PriorityClassName: "system-node-critical",
					NodeSelector:      map[string]string{"kubernetes.io/os": "linux"},
					Tolerations:       []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{
						Name:    "kube-proxy",
						Image:   "registry.k8s.io/kube-proxy:" + KubernetesVersion,
						Command: []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf"},
					}},
				},
			},
		},
	}
}

// InstallKubeProxy creates KubeProxyDaemonSet and waits until it has a ready pod on every node.
func (c *Cluster) InstallKubeProxy(ctx context.Context) error {
	if _, err := c.Clientset.AppsV1().DaemonSets("kube-system").Create(ctx, KubeProxyDaemonSet(), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kubebox: create kube-proxy: %w", err)
	}
	return c.WaitDaemonSet(ctx, "kube-system", "kube-proxy", time.Minute)
}

// WaitDaemonSet waits until a DaemonSet has rolled out: the controller observed its generation
// and every scheduled pod is updated and available. A DaemonSet that schedules no pod counts
// as rolled out.
func (c *Cluster) WaitDaemonSet(ctx context.Context, namespace, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *appsv1.DaemonSet
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		ds, err := c.Clientset.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = ds
		return DaemonSetRolledOut(ds), nil
	})
	if err != nil {
		st := "not found"
		if last != nil {
			st = fmt.Sprintf("%+v", last.Status)
		}
		return fmt.Errorf("kubebox: DaemonSet %s/%s not rolled out: %w (status %s)", namespace, name, err, st)
	}
	return nil
}

// DaemonSetRolledOut is kubectl rollout status's test for a DaemonSet.
func DaemonSetRolledOut(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return s.ObservedGeneration >= ds.Generation &&
		s.UpdatedNumberScheduled >= s.DesiredNumberScheduled &&
		s.NumberAvailable >= s.DesiredNumberScheduled
}
