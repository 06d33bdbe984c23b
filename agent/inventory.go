package agent

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// InventoryOptions say where to look.
type InventoryOptions struct {
	// CiliumNamespace holds cilium-config and the cilium DaemonSet (default kube-system).
	CiliumNamespace string
	// NICDriverLabel is the node label that names the NIC driver (Node Feature Discovery style).
	NICDriverLabel string
}

// DefaultNICDriverLabel is read when InventoryOptions.NICDriverLabel is empty.
const DefaultNICDriverLabel = "ebbflow.io/nic-driver"

// CollectInventory reads the cluster's inventory from its API server: version, nodes
// (kernel, OS image, NIC driver label, cloud provider), cilium-config, the Cilium image, and
// whether kube-proxy and aws-node run.
func CollectInventory(ctx context.Context, cs kubernetes.Interface, o InventoryOptions) (*ebbflowv1.Inventory, error) {
	if o.CiliumNamespace == "" {
		o.CiliumNamespace = "kube-system"
	}
	if o.NICDriverLabel == "" {
		o.NICDriverLabel = DefaultNICDriverLabel
	}
	inv := &ebbflowv1.Inventory{CollectTime: timestamppb.Now()}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	inv.KubernetesVersion = v.GitVersion
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	providers := map[string]int{}
	for _, n := range nodes.Items {
		ni := &ebbflowv1.NodeInfo{
			Name:          n.Name,
			KernelVersion: n.Status.NodeInfo.KernelVersion,
			OsImage:       n.Status.NodeInfo.OSImage,
			NicDriver:     n.Labels[o.NICDriverLabel],
			CloudProvider: providerOf(n.Spec.ProviderID),
		}
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" {
				ni.Ready = c.Status == "True"
			}
		}
		providers[ni.CloudProvider]++
		inv.Nodes = append(inv.Nodes, ni)
	}
	if len(providers) == 1 {
		for p := range providers {
			inv.CloudProvider = p
		}
	}
	cm, err := cs.CoreV1().ConfigMaps(o.CiliumNamespace).Get(ctx, "cilium-config", metav1.GetOptions{})
	switch {
	case err == nil:
		inv.CiliumConfig = cm.Data
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("cilium-config: %w", err)
	}
	ds, err := cs.AppsV1().DaemonSets(o.CiliumNamespace).Get(ctx, "cilium", metav1.GetOptions{})
	switch {
	case err == nil:
		for _, c := range ds.Spec.Template.Spec.Containers {
			if c.Name == "cilium-agent" || len(ds.Spec.Template.Spec.Containers) == 1 {
				if i := strings.LastIndex(c.Image, ":"); i > 0 {
					inv.CiliumImageVersion = strings.SplitN(c.Image[i+1:], "@", 2)[0]
				}
			}
		}
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("cilium DaemonSet: %w", err)
	}
	for name, present := range map[string]*bool{"kube-proxy": &inv.KubeProxyPresent, "aws-node": &inv.AwsNodePresent} {
		_, err := cs.AppsV1().DaemonSets("kube-system").Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			*present = true
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("%s DaemonSet: %w", name, err)
		}
	}
	return inv, nil
}

// providerOf maps a node's spec.providerID ("aws:///eu-west-1a/i-...") to a provider hint.
func providerOf(providerID string) string {
	scheme, _, ok := strings.Cut(providerID, "://")
	if !ok {
		return ""
	}
	switch scheme {
	case "aws":
		return "aws"
	case "gce":
		return "gcp"
	case "azure":
		return "azure"
	}
	return scheme
}
