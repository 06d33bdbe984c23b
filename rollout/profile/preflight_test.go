package profile

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func node(name, kernel, driver string) *ebbflowv1.NodeInfo {
	return &ebbflowv1.NodeInfo{Name: name, KernelVersion: kernel, NicDriver: driver, Ready: true}
}

func inventory(nodes ...*ebbflowv1.NodeInfo) *ebbflowv1.Inventory {
	return &ebbflowv1.Inventory{Nodes: nodes}
}

// results renders checks as "feature@node=RESULT" for one feature.
func results(checks []*ebbflowv1.PreflightCheck, feature string) string {
	var out []string
	for _, c := range checks {
		if c.GetFeature() == feature {
			r := strings.TrimPrefix(c.GetResult().String(), "PREFLIGHT_RESULT_")
			out = append(out, fmt.Sprintf("%s=%s", c.GetNode(), r))
		}
	}
	return strings.Join(out, ",")
}

func TestPreflightKernelMinimums(t *testing.T) {
	on := func(edit func(v *ebbflowv1.CiliumValues)) *ebbflowv1.ProfileSpec {
		return spec(nil, nil, kprWith(edit), nil)
	}
	tests := []struct {
		name    string
		spec    *ebbflowv1.ProfileSpec
		feature string
		kernel  string
		want    string // PASS, FAIL or UNKNOWN
	}{
		{"kpr 4.19.57", on(func(*ebbflowv1.CiliumValues) {}), FeatureKPR, "4.19.57", "PASS"},
		{"kpr 4.19.56", on(func(*ebbflowv1.CiliumValues) {}), FeatureKPR, "4.19.56", "FAIL"},
		{"kpr 5.0.y", on(func(*ebbflowv1.CiliumValues) {}), FeatureKPR, "5.0.21", "FAIL"},
		{"kpr 5.1.16", on(func(*ebbflowv1.CiliumValues) {}), FeatureKPR, "5.1.16", "PASS"},
		{"kpr 5.4 ubuntu", on(func(*ebbflowv1.CiliumValues) {}), FeatureKPR, "5.4.0-150-generic", "PASS"},
		{"kpr unparseable", on(func(*ebbflowv1.CiliumValues) {}), FeatureKPR, "linux", "UNKNOWN"},
		{"kpr kernel missing", on(func(*ebbflowv1.CiliumValues) {}), FeatureKPR, "", "UNKNOWN"},
		{"host routing 5.10", on(func(v *ebbflowv1.CiliumValues) { v.BpfHostLegacyRouting = b(false) }), FeatureHostRouting, "5.10.0-1", "PASS"},
		{"host routing 5.4", on(func(v *ebbflowv1.CiliumValues) { v.BpfHostLegacyRouting = b(false) }), FeatureHostRouting, "5.4.0-150-generic", "FAIL"},
		{"netkit 6.8", on(func(v *ebbflowv1.CiliumValues) { v.BpfDatapathMode = ebbflowv1.DatapathMode_DATAPATH_MODE_NETKIT }), FeatureNetkit, "6.8.0-45-generic", "PASS"},
		{"netkit 6.1", on(func(v *ebbflowv1.CiliumValues) { v.BpfDatapathMode = ebbflowv1.DatapathMode_DATAPATH_MODE_NETKIT }), FeatureNetkit, "6.1.112-124.190.amzn2023.x86_64", "FAIL"},
		{"big tcp v4 6.3", on(func(v *ebbflowv1.CiliumValues) { v.EnableIpv4BigTcp = b(true) }), FeatureBigTCPv4, "6.3.0", "PASS"},
		{"big tcp v4 6.1", on(func(v *ebbflowv1.CiliumValues) { v.EnableIpv4BigTcp = b(true) }), FeatureBigTCPv4, "6.1.112-124.190.amzn2023.x86_64", "FAIL"},
		{"big tcp v6 5.19", on(func(v *ebbflowv1.CiliumValues) { v.EnableIpv6BigTcp = b(true) }), FeatureBigTCPv6, "5.19.0", "PASS"},
		{"big tcp v6 5.15", on(func(v *ebbflowv1.CiliumValues) { v.EnableIpv6BigTcp = b(true) }), FeatureBigTCPv6, "5.15.0-1051-aws", "FAIL"},
		{"bbr 5.18", on(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true); v.BandwidthManagerBbr = b(true) }), FeatureBBR, "5.18.1", "PASS"},
		{"bbr 5.15", on(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true); v.BandwidthManagerBbr = b(true) }), FeatureBBR, "5.15.0-1051-aws", "FAIL"},
		{"bandwidth manager 5.1", on(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true) }), FeatureBandwidthManager, "5.1.0", "PASS"},
		{"bandwidth manager 4.19", on(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true) }), FeatureBandwidthManager, "4.19.57", "FAIL"},
		{"no-conntrack 4.19.57", on(func(v *ebbflowv1.CiliumValues) { v.InstallNoConntrackIptablesRules = b(true) }), FeatureNoConntrack, "4.19.57", "PASS"},
		{"no-conntrack 4.19.10", on(func(v *ebbflowv1.CiliumValues) { v.InstallNoConntrackIptablesRules = b(true) }), FeatureNoConntrack, "4.19.10", "FAIL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := Preflight(tt.spec, ebbflowv1.Phase_PHASE_KPR, inventory(node("n1", tt.kernel, "mlx5_core")))
			if got := results(checks, tt.feature); got != "n1="+tt.want {
				t.Fatalf("%s: got %q, want n1=%s; checks: %v", tt.feature, got, tt.want, checks)
			}
			ok, reasons := PhasePasses(checks)
			if ok != (tt.want == "PASS" && !strings.Contains(fmt.Sprint(checks), "FAIL") && !strings.Contains(fmt.Sprint(checks), "UNKNOWN")) {
				t.Fatalf("PhasePasses = %v, %v", ok, reasons)
			}
		})
	}
}

func TestPreflightXDP(t *testing.T) {
	native := ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_NATIVE
	best := ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_BEST_EFFORT
	tests := []struct {
		name   string
		accel  ebbflowv1.LoadBalancerAcceleration
		kernel string
		driver string
		want   string
	}{
		{"mlx5 module name", native, "5.15.0-1051-aws", "mlx5_core", "PASS"},
		{"ena on 5.10", native, "5.10.0", "ena", "PASS"},
		{"ena on 5.4", native, "5.4.0-150-generic", "ena", "FAIL"},
		{"ena on 5.4 best-effort", best, "5.4.0-150-generic", "ena", "PASS"},
		{"virtio_net", native, "6.8.0-45-generic", "virtio-net", "PASS"},
		{"bonding", native, "5.15.0", "bonding", "PASS"},
		{"bond too old", native, "5.10.0", "bond", "FAIL"},
		{"no native XDP driver", native, "6.8.0", "e1000e", "FAIL"},
		{"no native XDP driver best-effort", best, "6.8.0", "e1000e", "PASS"},
		{"driver unknown", native, "6.8.0", "", "UNKNOWN"},
		{"driver unknown best-effort", best, "6.8.0", "", "PASS"},
		{"kernel unknown best-effort", best, "??", "ena", "UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(nil, nil, kprOK(), &ebbflowv1.CiliumValues{LoadBalancerAcceleration: tt.accel})
			checks := Preflight(s, ebbflowv1.Phase_PHASE_XDP, inventory(node("n1", tt.kernel, tt.driver)))
			if got := results(checks, FeatureXDP); got != "n1="+tt.want {
				t.Fatalf("got %q, want n1=%s; checks %v", got, tt.want, checks)
			}
			// The kpr phase does not check XDP.
			if got := results(Preflight(s, ebbflowv1.Phase_PHASE_KPR, inventory(node("n1", tt.kernel, tt.driver))), FeatureXDP); got != "" {
				t.Fatalf("kpr phase checks XDP: %s", got)
			}
		})
	}
}

func TestPreflightCluster(t *testing.T) {
	kprNoHost := spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.K8SServiceHost = ""; v.K8SServicePort = nil }), nil)
	helm := func(m map[string]any) *ebbflowv1.Inventory {
		inv := inventory(node("n1", "6.8.0", "ena"))
		s, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		inv.HelmValues = s
		return inv
	}
	tests := []struct {
		name    string
		spec    *ebbflowv1.ProfileSpec
		phase   ebbflowv1.Phase
		inv     *ebbflowv1.Inventory
		feature string
		want    string
	}{
		{"no inventory", kprNoHost, ebbflowv1.Phase_PHASE_BASELINE, nil, FeatureInventory, "=UNKNOWN"},
		{"no nodes", kprNoHost, ebbflowv1.Phase_PHASE_BASELINE, inventory(), FeatureInventory, "=UNKNOWN"},
		{"unknown phase", kprNoHost, ebbflowv1.Phase(9), inventory(node("n1", "6.8", "")), "phase", "=UNKNOWN"},
		{"service host from profile", spec(nil, nil, kprOK(), nil), ebbflowv1.Phase_PHASE_KPR, inventory(node("n1", "6.8.0", "")), FeatureServiceHost, "=PASS"},
		{"service host from helm values", kprNoHost, ebbflowv1.Phase_PHASE_KPR, helm(map[string]any{"k8sServiceHost": "10.0.0.1", "k8sServicePort": 443}), FeatureServiceHost, "=PASS"},
		{"service port as a string", kprNoHost, ebbflowv1.Phase_PHASE_KPR, helm(map[string]any{"k8sServiceHost": "10.0.0.1", "k8sServicePort": "6443"}), FeatureServiceHost, "=PASS"},
		{"service host missing", kprNoHost, ebbflowv1.Phase_PHASE_KPR, helm(map[string]any{"k8sServiceHost": "10.0.0.1"}), FeatureServiceHost, "=FAIL"},
		{"helm values not reported", kprNoHost, ebbflowv1.Phase_PHASE_KPR, inventory(node("n1", "6.8.0", "")), FeatureServiceHost, "=UNKNOWN"},
		{"not checked before kpr", kprNoHost, ebbflowv1.Phase_PHASE_L7, inventory(node("n1", "6.8.0", "")), FeatureServiceHost, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := Preflight(tt.spec, tt.phase, tt.inv)
			if got := results(checks, tt.feature); got != tt.want {
				t.Fatalf("got %q, want %q; checks %v", got, tt.want, checks)
			}
		})
	}
}

func TestPreflightOrderAndReasons(t *testing.T) {
	s := spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BpfHostLegacyRouting = b(false) }), nil)
	inv := inventory(node("b", "5.4.0-150-generic", ""), node("a", "6.8.0-45-generic", ""), node("c", "garbage", ""))
	checks := Preflight(s, ebbflowv1.Phase_PHASE_KPR, inv)
	var got []string
	for _, c := range checks {
		got = append(got, c.GetFeature()+"@"+c.GetNode())
	}
	want := "k8s-service-host@,kube-proxy-replacement@a,kube-proxy-replacement@b,kube-proxy-replacement@c,host-routing@a,host-routing@b,host-routing@c"
	if strings.Join(got, ",") != want {
		t.Fatalf("order:\n got %s\nwant %s", strings.Join(got, ","), want)
	}
	ok, reasons := PhasePasses(checks)
	if ok {
		t.Fatal("PhasePasses = true")
	}
	wantReasons := []string{
		"kube-proxy-replacement unknown on node c: kernel version \"garbage\" is not parseable",
		"host-routing fails on node b: kernel 5.4.0-150-generic does not meet 5.10 needed for host-routing",
		"host-routing unknown on node c: kernel version \"garbage\" is not parseable",
	}
	if strings.Join(reasons, "\n") != strings.Join(wantReasons, "\n") {
		t.Fatalf("reasons:\n%s\nwant\n%s", strings.Join(reasons, "\n"), strings.Join(wantReasons, "\n"))
	}
	if ok, reasons := PhasePasses(nil); !ok || reasons != nil {
		t.Fatalf("PhasePasses(nil) = %v, %v", ok, reasons)
	}
}

func TestPreflightWarnings(t *testing.T) {
	bigTCP := spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.EnableIpv4BigTcp = b(true) }), nil)
	noCT := spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.InstallNoConntrackIptablesRules = b(true) }), nil)
	tests := []struct {
		name  string
		spec  *ebbflowv1.ProfileSpec
		inv   *ebbflowv1.Inventory
		rules string
	}{
		{"big tcp on mlx5 and ice", bigTCP, inventory(node("a", "6.8", "mlx5_core"), node("b", "6.8", "ice")), ""},
		{"big tcp on ena", bigTCP, inventory(node("a", "6.8", "ena"), node("b", "6.8", "mlx5")), "big-tcp-nic"},
		{"big tcp unknown driver", bigTCP, inventory(node("a", "6.8", "")), "big-tcp-nic"},
		{"no big tcp", spec(nil, nil, kprOK(), nil), inventory(node("a", "6.8", "ena")), ""},
		{"no-conntrack on aws", noCT, &ebbflowv1.Inventory{CloudProvider: "aws", Nodes: []*ebbflowv1.NodeInfo{node("a", "6.8", "ena")}}, "no-conntrack-managed-cloud"},
		{"no-conntrack on node provider", noCT, inventory(&ebbflowv1.NodeInfo{Name: "a", CloudProvider: "gce"}), "no-conntrack-managed-cloud"},
		{"no-conntrack on metal", noCT, inventory(node("a", "6.8", "ixgbe")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rules []string
			for _, w := range PreflightWarnings("c1", tt.spec, tt.inv) {
				rules = append(rules, w.GetRule())
				if !strings.HasPrefix(w.GetField(), "clusters.c1.inventory") {
					t.Errorf("field %q", w.GetField())
				}
			}
			if got := strings.Join(rules, ","); got != tt.rules && !(tt.rules != "" && strings.HasPrefix(got, tt.rules)) {
				t.Fatalf("rules %q, want %q", got, tt.rules)
			}
		})
	}
}
