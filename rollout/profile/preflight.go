package profile

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Feature names used in preflight checks.
const (
	FeatureInventory        = "inventory"
	FeatureServiceHost      = "k8s-service-host"
	FeatureKPR              = "kube-proxy-replacement"
	FeatureHostRouting      = "host-routing"
	FeatureNetkit           = "netkit"
	FeatureBigTCPv4         = "big-tcp-ipv4"
	FeatureBigTCPv6         = "big-tcp-ipv6"
	FeatureBandwidthManager = "bandwidth-manager"
	FeatureBBR              = "bbr"
	FeatureXDP              = "xdp-acceleration"
	FeatureNoConntrack      = "no-conntrack-iptables"
)

// xdpDrivers are the native-XDP drivers and the first kernel with native XDP in each.
var xdpDrivers = map[string]kernel{
	"ena": {5, 6, 0}, "bnxt_en": {4, 11, 0}, "thunderx": {4, 12, 0}, "dpaa2": {5, 0, 0},
	"ixgbe": {4, 12, 0}, "ixgbevf": {4, 17, 0}, "i40e": {4, 13, 0}, "ice": {5, 5, 0},
	"mvneta": {5, 5, 0}, "mlx4": {4, 8, 0}, "mlx5": {4, 9, 0}, "hv_netvsc": {5, 6, 0},
	"nfp": {4, 10, 0}, "virtio_net": {4, 10, 0}, "tun": {4, 14, 0}, "tap": {4, 14, 0},
	"bond": {5, 15, 0}, "qede": {4, 10, 0}, "netsec": {5, 3, 0}, "sfc": {5, 5, 0},
	"cpsw": {5, 3, 0},
}

// driverAliases maps kernel module names to the names of the driver table.
var driverAliases = map[string]string{
	"mlx5_core": "mlx5", "mlx4_en": "mlx4", "mlx4_core": "mlx4", "bonding": "bond",
	"nicvf": "thunderx", "fsl_dpaa2_eth": "dpaa2", "dpaa2_eth": "dpaa2", "virtio": "virtio_net",
}

// bigTCPDrivers are the NIC drivers BIG TCP takes effect on.
var bigTCPDrivers = map[string]bool{"mlx4": true, "mlx5": true, "ice": true}

// NormalizeDriver lower-cases a NIC driver name, writes '-' as '_' and maps module names to the
// driver table's names (mlx5_core -> mlx5, bonding -> bond).
func NormalizeDriver(s string) string {
	d := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
	if a, ok := driverAliases[d]; ok {
		return a
	}
	return d
}

// nodeFeature is a per-node kernel requirement of a feature that is on in the values.
type nodeFeature struct {
	name string
	on   func(v *ebbflowv1.CiliumValues) bool
	ok   func(k kernel) bool
	need string
}

func atLeast(w kernel) func(kernel) bool { return func(k kernel) bool { return k.atLeast(w) } }

var nodeFeatures = []nodeFeature{
	{FeatureKPR, kpr, kprKernelOK, kprKernelText},
	{FeatureHostRouting, explicitHostRouting, atLeast(kernel{5, 10, 0}), "5.10"},
	{FeatureNetkit, netkit, atLeast(kernel{6, 8, 0}), "6.8"},
	{FeatureBigTCPv4, func(v *ebbflowv1.CiliumValues) bool { return v.GetEnableIpv4BigTcp() }, atLeast(kernel{6, 3, 0}), "6.3"},
	{FeatureBigTCPv6, func(v *ebbflowv1.CiliumValues) bool { return v.GetEnableIpv6BigTcp() }, atLeast(kernel{5, 19, 0}), "5.19"},
	{FeatureBandwidthManager, func(v *ebbflowv1.CiliumValues) bool { return v.GetBandwidthManagerEnabled() }, atLeast(kernel{5, 1, 0}), "5.1"},
	{FeatureBBR, func(v *ebbflowv1.CiliumValues) bool { return v.GetBandwidthManagerBbr() }, atLeast(kernel{5, 18, 0}), "5.18"},
	{FeatureNoConntrack, func(v *ebbflowv1.CiliumValues) bool { return v.GetInstallNoConntrackIptablesRules() }, atLeast(kernel{4, 19, 57}), "4.19.57"},
}

// Preflight evaluates one phase of a profile against a cluster's inventory: every feature that
// is on in the cumulative values at that phase, on every node (nodes by name, features in a
// fixed order), plus cluster-wide checks (node empty). A missing or unreadable input is UNKNOWN,
// never PASS; an inventory without nodes yields one UNKNOWN check for the cluster.
func Preflight(spec *ebbflowv1.ProfileSpec, phase ebbflowv1.Phase, inv *ebbflowv1.Inventory) []*ebbflowv1.PreflightCheck {
	return NewPreflighter(spec).Check(phase, inv)
}

// Preflighter evaluates one profile against many clusters (a plan): the cumulative values of
// each phase are computed once, not for every cluster (Preflight and PreflightWarnings merged
// them eight times per cluster, half of a 10,000-cluster plan's time). It is read-only and
// safe to share.
type Preflighter struct {
	spec   *ebbflowv1.ProfileSpec
	values []*ebbflowv1.CiliumValues // by phase order; nil without a spec
}

// NewPreflighter prepares spec's checks.
func NewPreflighter(spec *ebbflowv1.ProfileSpec) *Preflighter {
	p := &Preflighter{spec: spec}
	if spec != nil {
		for _, ph := range phaseOrder {
			p.values = append(p.values, CumulativeValues(spec, ph))
		}
	}
	return p
}

// Check is Preflight of the profile's phase against inv.
func (p *Preflighter) Check(phase ebbflowv1.Phase, inv *ebbflowv1.Inventory) []*ebbflowv1.PreflightCheck {
	spec := p.spec
	clusterUnknown := func(feature, reason string) []*ebbflowv1.PreflightCheck {
		return []*ebbflowv1.PreflightCheck{{Phase: phase, Feature: feature, Result: unknown, Reason: reason}}
	}
	switch {
	case phaseIndex(phase) < 0:
		return clusterUnknown("phase", "unknown phase "+PhaseName(phase))
	case spec == nil:
		return clusterUnknown("profile", "no profile spec")
	case inv == nil:
		return clusterUnknown(FeatureInventory, "the agent has not reported an inventory")
	case len(inv.GetNodes()) == 0:
		return clusterUnknown(FeatureInventory, "the inventory lists no nodes")
	}
	v := p.values[phaseIndex(phase)]
	var out []*ebbflowv1.PreflightCheck
	add := func(feature, node string, r ebbflowv1.PreflightResult, format string, args ...any) {
		out = append(out, &ebbflowv1.PreflightCheck{Phase: phase, Feature: feature, Node: node, Result: r, Reason: fmt.Sprintf(format, args...)})
	}
	if kpr(v) {
		r, reason := serviceHostCheck(v, inv)
		add(FeatureServiceHost, "", r, "%s", reason)
	}
	nodes := slices.Clone(inv.GetNodes())
	slices.SortStableFunc(nodes, func(a, b *ebbflowv1.NodeInfo) int { return cmp.Compare(a.GetName(), b.GetName()) })
	for _, f := range nodeFeatures {
		if !f.on(v) {
			continue
		}
		for _, n := range nodes {
			r, reason := kernelCheck(n.GetKernelVersion(), f.ok, f.need, f.name)
			add(f.name, n.GetName(), r, "%s", reason)
		}
	}
	if accel(v) {
		best := v.GetLoadBalancerAcceleration() == ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_BEST_EFFORT
		for _, n := range nodes {
			r, reason := xdpCheck(n, best)
			add(FeatureXDP, n.GetName(), r, "%s", reason)
		}
	}
	return out
}

const (
	pass    = ebbflowv1.PreflightResult_PREFLIGHT_RESULT_PASS
	fail    = ebbflowv1.PreflightResult_PREFLIGHT_RESULT_FAIL
	unknown = ebbflowv1.PreflightResult_PREFLIGHT_RESULT_UNKNOWN
)

func kernelCheck(s string, ok func(kernel) bool, need, feature string) (ebbflowv1.PreflightResult, string) {
	if strings.TrimSpace(s) == "" {
		return unknown, "kernel version not reported"
	}
	k, parsed := parseKernel(s)
	if !parsed {
		return unknown, fmt.Sprintf("kernel version %q is not parseable", clip(s))
	}
	if ok(k) {
		return pass, fmt.Sprintf("kernel %s meets %s", clip(s), need)
	}
	return fail, fmt.Sprintf("kernel %s does not meet %s needed for %s", clip(s), need, feature)
}

func xdpCheck(n *ebbflowv1.NodeInfo, best bool) (ebbflowv1.PreflightResult, string) {
	s := n.GetKernelVersion()
	if strings.TrimSpace(s) == "" {
		return unknown, "kernel version not reported"
	}
	k, parsed := parseKernel(s)
	if !parsed {
		return unknown, fmt.Sprintf("kernel version %q is not parseable", clip(s))
	}
	drv := NormalizeDriver(n.GetNicDriver())
	if drv == "" {
		if best {
			return pass, "NIC driver unknown; best-effort acceleration falls back to no XDP on this node"
		}
		return unknown, "NIC driver unknown (no driver label on the node); native XDP needs a known native-XDP driver"
	}
	minK, known := xdpDrivers[drv]
	switch {
	case !known && best:
		return pass, fmt.Sprintf("driver %s has no native XDP; best-effort acceleration falls back to no XDP", clip(drv))
	case !known:
		return fail, fmt.Sprintf("driver %s has no native XDP support", clip(drv))
	case !k.atLeast(minK) && best:
		return pass, fmt.Sprintf("driver %s has native XDP from kernel %d.%d, node has %s; best-effort falls back to no XDP", drv, minK.major, minK.minor, clip(s))
	case !k.atLeast(minK):
		return fail, fmt.Sprintf("driver %s has native XDP from kernel %d.%d, node has %s", drv, minK.major, minK.minor, clip(s))
	}
	return pass, fmt.Sprintf("driver %s has native XDP on kernel %s", drv, clip(s))
}

// serviceHostCheck: kube-proxy replacement needs k8sServiceHost and k8sServicePort, from the
// profile or else from the cluster's current Helm values.
func serviceHostCheck(v *ebbflowv1.CiliumValues, inv *ebbflowv1.Inventory) (ebbflowv1.PreflightResult, string) {
	host, port := v.GetK8SServiceHost(), ""
	if v.K8SServicePort != nil {
		port = strconv.Itoa(int(v.GetK8SServicePort()))
	}
	if host != "" && port != "" {
		return pass, fmt.Sprintf("set by the profile: %s:%s", clip(host), port)
	}
	hv := inv.GetHelmValues()
	if hv == nil {
		return unknown, "the profile does not set k8sServiceHost and k8sServicePort and the cluster's Helm values were not reported"
	}
	if host == "" {
		host = hv.GetFields()["k8sServiceHost"].GetStringValue()
	}
	if port == "" {
		port = helmPort(hv.GetFields()["k8sServicePort"])
	}
	if host == "" || port == "" {
		return fail, "kubeProxyReplacement=true needs k8sServiceHost and k8sServicePort, and neither the profile nor the cluster's Helm values set both: agents would lose the API server"
	}
	return pass, fmt.Sprintf("from the cluster's Helm values: %s:%s", clip(host), clip(port))
}

func helmPort(v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		if k.NumberValue >= 1 && k.NumberValue <= 65535 {
			return strconv.Itoa(int(k.NumberValue))
		}
	case *structpb.Value_StringValue:
		if p, err := strconv.Atoi(k.StringValue); err == nil && p >= 1 && p <= 65535 {
			return k.StringValue
		}
	}
	return ""
}

// PhasePasses reports whether every check passed, and for each one that did not, why:
// "feature on node n: reason", or "feature: reason" for a cluster-wide check.
func PhasePasses(checks []*ebbflowv1.PreflightCheck) (bool, []string) {
	var reasons []string
	for _, c := range checks {
		if c.GetResult() == pass {
			continue
		}
		verdict := "fails"
		if c.GetResult() != fail {
			verdict = "unknown"
		}
		if c.GetNode() == "" {
			reasons = append(reasons, fmt.Sprintf("%s %s: %s", c.GetFeature(), verdict, c.GetReason()))
		} else {
			reasons = append(reasons, fmt.Sprintf("%s %s on node %s: %s", c.GetFeature(), verdict, c.GetNode(), c.GetReason()))
		}
	}
	return len(reasons) == 0, reasons
}

// PreflightWarnings are the warnings a cluster's inventory raises against a profile, whatever
// phase: BIG TCP on nodes whose NIC is not mlx4/mlx5/ice, and no-conntrack rules on a cloud.
// Fields are named clusters["<cluster>"].inventory....
func PreflightWarnings(cluster string, spec *ebbflowv1.ProfileSpec, inv *ebbflowv1.Inventory) []*ebbflowv1.ValidationIssue {
	return NewPreflighter(spec).Warnings(cluster, inv)
}

// Warnings is PreflightWarnings of the profile for cluster's inventory.
func (p *Preflighter) Warnings(cluster string, inv *ebbflowv1.Inventory) []*ebbflowv1.ValidationIssue {
	var w Issues
	base := pathKey("clusters", cluster) + ".inventory"
	var bigTCPOn, noCTOn bool
	for _, v := range p.values {
		bigTCPOn = bigTCPOn || bigTCP(v)
		noCTOn = noCTOn || v.GetInstallNoConntrackIptablesRules()
	}
	if bigTCPOn {
		var other, unknownDrv []string
		for _, n := range inv.GetNodes() {
			switch d := NormalizeDriver(n.GetNicDriver()); {
			case d == "":
				unknownDrv = append(unknownDrv, n.GetName())
			case !bigTCPDrivers[d]:
				other = append(other, n.GetName()+" ("+clip(d)+")")
			}
		}
		if len(other) > 0 {
			w.Add(base+".nodes", "big-tcp-nic", "BIG TCP takes effect only on mlx4/mlx5/ice NICs; %d of %d nodes have other drivers: %s", len(other), len(inv.GetNodes()), listSome(other))
		}
		if len(unknownDrv) > 0 {
			w.Add(base+".nodes", "big-tcp-nic", "BIG TCP takes effect only on mlx4/mlx5/ice NICs; %d of %d nodes have no known driver: %s", len(unknownDrv), len(inv.GetNodes()), listSome(unknownDrv))
		}
	}
	if noCTOn {
		cloud := inv.GetCloudProvider()
		for _, n := range inv.GetNodes() {
			cloud = cmp.Or(cloud, n.GetCloudProvider())
		}
		if cloud != "" {
			w.Add(base+".cloudProvider", "no-conntrack-managed-cloud", "installNoConntrackIptablesRules is not supported on managed clouds; this cluster runs on %s", clip(cloud))
		}
	}
	return w
}

// listSome joins up to five names and counts the rest.
func listSome(names []string) string {
	if len(names) <= 5 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:5], ", "), len(names)-5)
}
