package profile

import (
	"strings"
	"testing"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// ruleCase is one rule with a spec that breaks it (and the field the error must name) and a
// spec that keeps it.
type ruleCase struct {
	rule  string
	fail  *ebbflowv1.ProfileSpec
	field string
	pass  *ebbflowv1.ProfileSpec
}

func crossRuleCases(t *testing.T) []ruleCase {
	xdpNative := &ebbflowv1.CiliumValues{LoadBalancerAcceleration: ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_NATIVE}
	l7WithPolicy := func(l7Proxy *bool) *ebbflowv1.ProfileSpec {
		s := spec(nil, &ebbflowv1.CiliumValues{L7Proxy: l7Proxy}, nil, nil)
		s.L7.Namespaces = []string{"web"}
		s.L7.Policies = append(s.L7.Policies, mustStruct(t, map[string]any{
			"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
			"metadata": map[string]any{"name": "vis"}, "spec": map[string]any{"endpointSelector": map[string]any{}},
		}))
		return s
	}
	return []ruleCase{
		{
			rule:  "xdp-needs-native-routing",
			fail:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.RoutingMode = tunnel }), xdpNative),
			field: "spec.xdp.values.loadBalancerAcceleration",
			pass:  spec(nil, nil, kprOK(), xdpNative),
		},
		{
			rule:  "xdp-needs-kpr",
			fail:  spec(&ebbflowv1.CiliumValues{RoutingMode: native}, nil, nil, xdpNative),
			field: "spec.xdp.values.loadBalancerAcceleration",
			pass:  spec(nil, nil, kprOK(), xdpNative),
		},
		{
			rule:  "big-tcp-needs-no-tunnel",
			fail:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.RoutingMode = tunnel; v.EnableIpv4BigTcp = b(true) }), nil),
			field: "spec.kpr.values.enableIpv4BigTcp",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.EnableIpv4BigTcp = b(true) }), nil),
		},
		{
			rule:  "big-tcp-needs-kpr",
			fail:  spec(&ebbflowv1.CiliumValues{RoutingMode: native, BpfMasquerade: b(true), EnableIpv6BigTcp: b(true)}, nil, nil, nil),
			field: "spec.baseline.values.enableIpv6BigTcp",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.EnableIpv6BigTcp = b(true) }), nil),
		},
		{
			rule:  "big-tcp-needs-bpf-masquerade",
			fail:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BpfMasquerade = nil; v.EnableIpv4BigTcp = b(true) }), nil),
			field: "spec.kpr.values.enableIpv4BigTcp",
			// Masquerading off altogether satisfies it too.
			pass: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.BpfMasquerade = nil
				v.EnableIpv4BigTcp = b(true)
				v.Extra = extra("enableIPv4Masquerade", false)
			}), nil),
		},
		{
			rule:  "big-tcp-needs-host-routing",
			fail:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BpfHostLegacyRouting = b(true); v.EnableIpv4BigTcp = b(true) }), nil),
			field: "spec.kpr.values.enableIpv4BigTcp",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BpfHostLegacyRouting = b(false); v.EnableIpv4BigTcp = b(true) }), nil),
		},
		{
			rule: "big-tcp-needs-no-encryption",
			fail: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.EnableIpv4BigTcp = b(true)
				v.Extra = extra("encryption.enabled", true)
			}), nil),
			field: "spec.kpr.values.enableIpv4BigTcp",
			pass: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.EnableIpv4BigTcp = b(true)
				v.Extra = extra("encryption.enabled", false)
			}), nil),
		},
		{
			rule: "dsr-geneve-needs-geneve-tunnel",
			fail: spec(&ebbflowv1.CiliumValues{
				LoadBalancerDsrDispatch: ebbflowv1.DsrDispatch_DSR_DISPATCH_GENEVE,
				TunnelProtocol:          ebbflowv1.TunnelProtocol_TUNNEL_PROTOCOL_VXLAN,
			}, nil, nil, nil),
			field: "spec.baseline.values.loadBalancerDsrDispatch",
			pass: spec(&ebbflowv1.CiliumValues{
				LoadBalancerDsrDispatch: ebbflowv1.DsrDispatch_DSR_DISPATCH_GENEVE,
				TunnelProtocol:          ebbflowv1.TunnelProtocol_TUNNEL_PROTOCOL_GENEVE,
			}, nil, nil, nil),
		},
		{
			rule: "dsr-opt-needs-native-routing",
			fail: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.RoutingMode = tunnel
				v.LoadBalancerMode = ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_DSR
			}), nil),
			field: "spec.kpr.values.loadBalancerMode",
			pass: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.LoadBalancerMode = ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_HYBRID
				v.LoadBalancerDsrDispatch = ebbflowv1.DsrDispatch_DSR_DISPATCH_OPT
			}), nil),
		},
		{
			rule:  "bbr-needs-bandwidth-manager",
			fail:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerBbr = b(true) }), nil),
			field: "spec.kpr.values.bandwidthManagerBbr",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerBbr = b(true); v.BandwidthManagerEnabled = b(true) }), nil),
		},
		{
			rule: "bbr-needs-host-routing",
			fail: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.BandwidthManagerBbr = b(true)
				v.BandwidthManagerEnabled = b(true)
				v.BpfHostLegacyRouting = b(true)
			}), nil),
			field: "spec.kpr.values.bandwidthManagerBbr",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerBbr = b(true); v.BandwidthManagerEnabled = b(true) }), nil),
		},
		{
			rule:  "bandwidth-manager-needs-kpr",
			fail:  spec(&ebbflowv1.CiliumValues{BandwidthManagerEnabled: b(true)}, nil, nil, nil),
			field: "spec.baseline.values.bandwidthManagerEnabled",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true) }), nil),
		},
		{
			rule:  "host-routing-needs-kpr",
			fail:  spec(&ebbflowv1.CiliumValues{BpfHostLegacyRouting: b(false), BpfMasquerade: b(true)}, nil, nil, nil),
			field: "spec.baseline.values.bpfHostLegacyRouting",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BpfHostLegacyRouting = b(false) }), nil),
		},
		{
			rule:  "host-routing-needs-bpf-masquerade",
			fail:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BpfMasquerade = nil; v.BpfHostLegacyRouting = b(false) }), nil),
			field: "spec.kpr.values.bpfHostLegacyRouting",
			pass: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.BpfMasquerade = nil
				v.BpfHostLegacyRouting = b(false)
				v.Extra = extra("enableIPv4Masquerade", false)
			}), nil),
		},
		{
			rule:  "no-conntrack-needs-native-routing",
			fail:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.RoutingMode = tunnel; v.InstallNoConntrackIptablesRules = b(true) }), nil),
			field: "spec.kpr.values.installNoConntrackIptablesRules",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.InstallNoConntrackIptablesRules = b(true) }), nil),
		},
		{
			rule:  "no-conntrack-needs-kpr",
			fail:  spec(&ebbflowv1.CiliumValues{RoutingMode: native, BpfMasquerade: b(true), InstallNoConntrackIptablesRules: b(true)}, nil, nil, nil),
			field: "spec.baseline.values.installNoConntrackIptablesRules",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.InstallNoConntrackIptablesRules = b(true) }), nil),
		},
		{
			rule: "no-conntrack-needs-bpf-masquerade",
			fail: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.BpfMasquerade = b(false)
				v.InstallNoConntrackIptablesRules = b(true)
			}), nil),
			field: "spec.kpr.values.installNoConntrackIptablesRules",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.InstallNoConntrackIptablesRules = b(true) }), nil),
		},
		{
			rule: "no-conntrack-no-cni-chaining",
			fail: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.InstallNoConntrackIptablesRules = b(true)
				v.Extra = extra("cni.chainingMode", "aws-cni")
			}), nil),
			field: "spec.kpr.values.installNoConntrackIptablesRules",
			pass: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
				v.InstallNoConntrackIptablesRules = b(true)
				v.Extra = extra("cni.chainingMode", "none")
			}), nil),
		},
		{
			rule:  "netkit-needs-host-routing",
			fail:  spec(&ebbflowv1.CiliumValues{BpfDatapathMode: ebbflowv1.DatapathMode_DATAPATH_MODE_NETKIT}, nil, nil, nil),
			field: "spec.baseline.values.bpfDatapathMode",
			pass:  spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BpfDatapathMode = ebbflowv1.DatapathMode_DATAPATH_MODE_NETKIT_L2 }), nil),
		},
		{
			rule:  "park-needs-kpr",
			fail:  spec(nil, nil, &ebbflowv1.CiliumValues{}, nil),
			field: "spec.kpr.values.kubeProxyReplacement",
			pass:  spec(nil, nil, kprOK(), nil),
		},
		{
			rule:  "l7-policies-need-l7-proxy",
			fail:  l7WithPolicy(b(false)),
			field: "spec.l7.values.l7Proxy",
			pass:  l7WithPolicy(b(true)),
		},
		{
			rule: ruleTurnOff,
			fail: spec(nil, nil,
				kprWith(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true) }),
				&ebbflowv1.CiliumValues{BandwidthManagerEnabled: b(false)}),
			field: "spec.xdp.values.bandwidthManagerEnabled",
			pass: spec(nil, nil,
				kprWith(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true) }),
				&ebbflowv1.CiliumValues{BandwidthManagerEnabled: b(false), AllowTurnOff: []string{"bandwidthManager.enabled"}}),
		},
	}
}

func TestCrossFieldRules(t *testing.T) {
	cases := crossRuleCases(t)
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.rule] = true
		t.Run(tc.rule+"/fails", func(t *testing.T) {
			res := Validate("p", tc.fail)
			got := findIssue(res.Errors, tc.rule)
			if len(got) == 0 {
				t.Fatalf("want a %s error, got:\n%s", tc.rule, dumpIssues(res.Errors))
			}
			if got[0].GetField() != tc.field {
				t.Errorf("field = %q, want %q", got[0].GetField(), tc.field)
			}
			if got[0].GetMessage() == "" {
				t.Error("empty message")
			}
			if err := res.Err(); err == nil || !strings.Contains(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), "("+tc.rule+")") {
				t.Errorf("Err() = %v; want it to list %s and (%s)", err, tc.field, tc.rule)
			}
		})
		t.Run(tc.rule+"/passes", func(t *testing.T) {
			res := Validate("p", tc.pass)
			if err := res.Err(); err != nil {
				t.Fatalf("want no errors, got %v", err)
			}
		})
	}
	for _, r := range crossRules {
		if !covered[r.id] {
			t.Errorf("rule %s has no test case", r.id)
		}
	}
	if !covered[ruleTurnOff] {
		t.Errorf("rule %s has no test case", ruleTurnOff)
	}
}

func TestRulesUseCumulativeValues(t *testing.T) {
	tests := []struct {
		name   string
		spec   *ebbflowv1.ProfileSpec
		rule   string
		fields []string // every error of the rule, in order; empty means none
	}{
		{
			name: "xdp on top of kpr's native routing passes",
			spec: spec(nil, nil, kprOK(), &ebbflowv1.CiliumValues{LoadBalancerAcceleration: ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_BEST_EFFORT}),
			rule: "xdp-needs-native-routing",
		},
		{
			name: "baseline breakage reported once, not at every later phase",
			spec: spec(&ebbflowv1.CiliumValues{BandwidthManagerEnabled: b(true)}, &ebbflowv1.CiliumValues{L7Proxy: b(true)}, nil, nil),
			rule: "bandwidth-manager-needs-kpr", fields: []string{"spec.baseline.values.bandwidthManagerEnabled"},
		},
		{
			name: "fixed by a later phase still reports the earlier phase",
			spec: spec(&ebbflowv1.CiliumValues{BandwidthManagerEnabled: b(true)}, nil, kprOK(), nil),
			rule: "bandwidth-manager-needs-kpr", fields: []string{"spec.baseline.values.bandwidthManagerEnabled"},
		},
		{
			name: "later phase breaks a dependency: named at that phase's field",
			spec: spec(nil, nil,
				kprWith(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true); v.BandwidthManagerBbr = b(true) }),
				&ebbflowv1.CiliumValues{BandwidthManagerEnabled: b(false), AllowTurnOff: []string{"bandwidthManagerEnabled"}}),
			rule: "bbr-needs-bandwidth-manager", fields: []string{"spec.xdp.values.bandwidthManagerEnabled"},
		},
		{
			name: "enum change needs allowTurnOff",
			spec: spec(nil, nil,
				kprWith(func(v *ebbflowv1.CiliumValues) {
					v.LoadBalancerMode = ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_DSR
				}),
				&ebbflowv1.CiliumValues{LoadBalancerMode: ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_SNAT}),
			rule: ruleTurnOff, fields: []string{"spec.xdp.values.loadBalancerMode"},
		},
		{
			name: "extra bool turned off needs allowTurnOff",
			spec: spec(&ebbflowv1.CiliumValues{Extra: extra("hubble.relay.enabled", true)}, &ebbflowv1.CiliumValues{Extra: extra("hubble.relay.enabled", false)}, nil, nil),
			rule: ruleTurnOff, fields: []string{`spec.l7.values.extra["hubble.relay.enabled"]`},
		},
		{
			name: "extra bool turned off with allowTurnOff",
			spec: spec(&ebbflowv1.CiliumValues{Extra: extra("hubble.relay.enabled", true)}, &ebbflowv1.CiliumValues{Extra: extra("hubble.relay.enabled", false), AllowTurnOff: []string{"hubble.relay.enabled"}}, nil, nil),
			rule: ruleTurnOff,
		},
		{
			name: "setting the same value again is not a turn-off",
			spec: spec(nil, nil, kprOK(), kprOK()),
			rule: ruleTurnOff,
		},
		{
			name: "turning off what was never turned on is fine",
			spec: spec(nil, &ebbflowv1.CiliumValues{HubbleEnabled: b(false)}, nil, nil),
			rule: ruleTurnOff,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Validate("p", tt.spec)
			got := findIssue(res.Errors, tt.rule)
			var fields []string
			for _, is := range got {
				fields = append(fields, is.GetField())
			}
			if strings.Join(fields, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("%s errors at %v, want %v; all errors:\n%s", tt.rule, fields, tt.fields, dumpIssues(res.Errors))
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	egress := func(t *testing.T) *ebbflowv1.ProfileSpec {
		s := spec(nil, &ebbflowv1.CiliumValues{}, kprWith(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true) }), nil)
		s.L7.Namespaces = []string{"web"}
		s.L7.Policies = append(s.L7.Policies, mustStruct(t, map[string]any{
			"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": map[string]any{"name": "dns"},
			"spec": map[string]any{"endpointSelector": map[string]any{}, "egress": []any{map[string]any{
				"toPorts": []any{map[string]any{"ports": []any{map[string]any{"port": "53", "protocol": "ANY"}}, "rules": map[string]any{"dns": []any{map[string]any{"matchPattern": "*"}}}}},
			}}},
		}))
		return s
	}
	onPlatform := func(s *ebbflowv1.ProfileSpec, p string) *ebbflowv1.ProfileSpec { s.Platform = p; return s }
	unpinned := spec(nil, nil, nil, nil)
	unpinned.Chart.Version = ""
	tests := []struct {
		name  string
		spec  *ebbflowv1.ProfileSpec
		rule  string
		field string // "" means the warning must not appear
	}{
		{"bandwidth manager with egress L7", egress(t), "bandwidth-manager-egress-l7", "spec.kpr.values.bandwidthManagerEnabled"},
		{"bandwidth manager without egress L7", spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BandwidthManagerEnabled = b(true) }), nil), "bandwidth-manager-egress-l7", ""},
		{"netkit", spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BpfDatapathMode = ebbflowv1.DatapathMode_DATAPATH_MODE_NETKIT }), nil), "netkit-new-nodes", "spec.kpr.values.bpfDatapathMode"},
		{"veth", spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.BpfDatapathMode = ebbflowv1.DatapathMode_DATAPATH_MODE_VETH }), nil), "netkit-new-nodes", ""},
		{"BIG TCP on eks", onPlatform(spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.EnableIpv4BigTcp = b(true) }), nil), "eks"), "big-tcp-nic", "spec.kpr.values.enableIpv4BigTcp"},
		{"BIG TCP on bare metal", onPlatform(spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.EnableIpv4BigTcp = b(true) }), nil), "bare-metal"), "big-tcp-nic", ""},
		{"no-conntrack on gke", onPlatform(spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.InstallNoConntrackIptablesRules = b(true) }), nil), "GKE"), "no-conntrack-managed-cloud", "spec.kpr.values.installNoConntrackIptablesRules"},
		{"no-conntrack on bare metal", onPlatform(spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.InstallNoConntrackIptablesRules = b(true) }), nil), "bare-metal"), "no-conntrack-managed-cloud", ""},
		{"dsr opt on aks", onPlatform(spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
			v.LoadBalancerMode = ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_DSR
		}), nil), "aks"), "dsr-opt-cloud", "spec.kpr.values.loadBalancerMode"},
		{"dsr opt on bare metal", spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
			v.LoadBalancerMode = ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_DSR
		}), nil), "dsr-opt-cloud", ""},
		{"extra key", spec(&ebbflowv1.CiliumValues{Extra: extra("prometheus.enabled", true)}, nil, nil, nil), "extra-unvalidated", "spec.baseline.values.extra[\"prometheus.enabled\"]"},
		{"no extra key", spec(nil, nil, nil, nil), "extra-unvalidated", ""},
		{"kpr without service host", spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.K8SServiceHost = "" }), nil), "kpr-service-host-unset", "spec.kpr.values.kubeProxyReplacement"},
		{"kpr with service host", spec(nil, nil, kprOK(), nil), "kpr-service-host-unset", ""},
		{"xdp phase without acceleration", spec(nil, nil, kprOK(), &ebbflowv1.CiliumValues{}), "xdp-phase-no-acceleration", "spec.xdp.values.loadBalancerAcceleration"},
		{"xdp phase with acceleration", spec(nil, nil, kprOK(), &ebbflowv1.CiliumValues{LoadBalancerAcceleration: ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_NATIVE}), "xdp-phase-no-acceleration", ""},
		{"maglev settings with random", spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.MaglevTableSize = i32(16381) }), nil), "maglev-unused", "spec.xdp.values.maglevTableSize"},
		{"maglev settings with maglev", spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
			v.MaglevTableSize = i32(16381)
			v.LoadBalancerAlgorithm = ebbflowv1.LoadBalancerAlgorithm_LOAD_BALANCER_ALGORITHM_MAGLEV
		}), nil), "maglev-unused", ""},
		{"chart unpinned", unpinned, "chart-version-unpinned", "spec.chart.version"},
		{"chart pinned", spec(nil, nil, nil, nil), "chart-version-unpinned", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Validate("p", tt.spec)
			if err := res.Err(); err != nil {
				t.Fatalf("warnings must not come with errors here: %v", err)
			}
			got := findIssue(res.Warnings, tt.rule)
			switch {
			case tt.field == "" && len(got) > 0:
				t.Fatalf("unexpected %s warning: %s", tt.rule, dumpIssues(got))
			case tt.field != "" && len(got) == 0:
				t.Fatalf("want a %s warning, got:\n%s", tt.rule, dumpIssues(res.Warnings))
			case tt.field != "" && got[0].GetField() != tt.field:
				t.Fatalf("field = %q, want %q", got[0].GetField(), tt.field)
			}
		})
	}
}

func TestRulesDocumented(t *testing.T) {
	ids := map[string]bool{}
	for _, r := range Rules() {
		if ids[r.ID] {
			t.Errorf("rule %s listed twice", r.ID)
		}
		ids[r.ID] = true
		if r.Summary == "" || (r.Severity != "error" && r.Severity != "warning") {
			t.Errorf("rule %s: bad doc %+v", r.ID, r)
		}
	}
	// Every rule a test case produces is documented.
	for _, tc := range crossRuleCases(t) {
		for _, is := range append(Validate("p", tc.fail).Errors, Validate("p", tc.fail).Warnings...) {
			if !ids[is.GetRule()] {
				t.Errorf("rule %s is not in Rules()", is.GetRule())
			}
		}
	}
}
