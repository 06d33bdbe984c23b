package profile

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Every typed CiliumValues field has a Helm key; a new proto field must be added to valueFields.
func TestValueFieldsCoverProto(t *testing.T) {
	fields := valuesDesc.Fields()
	known := map[string]bool{"extra": true, "allowTurnOff": true}
	for _, f := range valueFields {
		if fieldDesc(f.json) == nil {
			t.Errorf("valueFields has %q, which CiliumValues lacks", f.json)
		}
		known[f.json] = true
	}
	for i := 0; i < fields.Len(); i++ {
		if name := fields.Get(i).JSONName(); !known[name] {
			t.Errorf("CiliumValues.%s has no Helm key in valueFields", name)
		}
	}
}

func TestCumulativeValues(t *testing.T) {
	s := spec(
		&ebbflowv1.CiliumValues{HubbleEnabled: b(true), Mtu: i32(1500), Extra: extra("a", 1, "b", "x")},
		&ebbflowv1.CiliumValues{L7Proxy: b(true)},
		&ebbflowv1.CiliumValues{KubeProxyReplacement: b(true), Mtu: i32(9000), RoutingMode: native, Extra: extra("b", "y"), AllowTurnOff: []string{"MTU"}},
		&ebbflowv1.CiliumValues{HubbleEnabled: b(false)},
	)
	tests := []struct {
		name  string
		phase ebbflowv1.Phase
		want  *ebbflowv1.CiliumValues
	}{
		{"baseline", ebbflowv1.Phase_PHASE_BASELINE, &ebbflowv1.CiliumValues{HubbleEnabled: b(true), Mtu: i32(1500), Extra: extra("a", 1, "b", "x")}},
		{"l7", ebbflowv1.Phase_PHASE_L7, &ebbflowv1.CiliumValues{HubbleEnabled: b(true), Mtu: i32(1500), L7Proxy: b(true), Extra: extra("a", 1, "b", "x")}},
		{"kpr: later wins, extra merges by key, allowTurnOff dropped", ebbflowv1.Phase_PHASE_KPR, &ebbflowv1.CiliumValues{
			HubbleEnabled: b(true), Mtu: i32(9000), L7Proxy: b(true), KubeProxyReplacement: b(true), RoutingMode: native, Extra: extra("a", 1, "b", "y"),
		}},
		{"xdp: false overrides true", ebbflowv1.Phase_PHASE_XDP, &ebbflowv1.CiliumValues{
			HubbleEnabled: b(false), Mtu: i32(9000), L7Proxy: b(true), KubeProxyReplacement: b(true), RoutingMode: native, Extra: extra("a", 1, "b", "y"),
		}},
		{"unknown phase", ebbflowv1.Phase_PHASE_UNSPECIFIED, &ebbflowv1.CiliumValues{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CumulativeValues(s, tt.phase)
			if !proto.Equal(got, tt.want) {
				t.Fatalf("got %v\nwant %v", got, tt.want)
			}
		})
	}
	// The result never aliases the spec.
	CumulativeValues(s, ebbflowv1.Phase_PHASE_XDP).Extra["a"] = nil
	if s.Baseline.Values.Extra["a"] == nil {
		t.Fatal("CumulativeValues aliases the spec's extra map")
	}
}

func TestHelmValues(t *testing.T) {
	v := &ebbflowv1.CiliumValues{
		KubeProxyReplacement:     b(true),
		K8SServiceHost:           "api.example.com",
		K8SServicePort:           i32(6443),
		RoutingMode:              native,
		Ipv4NativeRoutingCidr:    "10.0.0.0/8",
		BpfMasquerade:            b(true),
		BpfHostLegacyRouting:     b(false),
		BpfDatapathMode:          ebbflowv1.DatapathMode_DATAPATH_MODE_NETKIT_L2,
		BpfMapDynamicSizeRatio:   f64(0.005),
		EnableIpv4BigTcp:         b(true),
		BandwidthManagerEnabled:  b(true),
		BandwidthManagerBbr:      b(true),
		LoadBalancerAlgorithm:    ebbflowv1.LoadBalancerAlgorithm_LOAD_BALANCER_ALGORITHM_MAGLEV,
		LoadBalancerMode:         ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_HYBRID,
		LoadBalancerAcceleration: ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_BEST_EFFORT,
		LoadBalancerDsrDispatch:  ebbflowv1.DsrDispatch_DSR_DISPATCH_OPT,
		MaglevTableSize:          i32(16381),
		MaglevHashSeed:           "JLfvgnHc2kaSUFaI",
		SocketLbEnabled:          b(true),
		Mtu:                      i32(0),
		Extra:                    extra("bpf.preallocateMaps", true, `podAnnotations.prometheus\.io/scrape`, "true", "enableIPv4Masquerade", false),
	}
	want := map[string]any{
		"kubeProxyReplacement":  "true",
		"k8sServiceHost":        "api.example.com",
		"k8sServicePort":        6443,
		"routingMode":           "native",
		"ipv4NativeRoutingCIDR": "10.0.0.0/8",
		"bpf": map[string]any{
			"masquerade": true, "hostLegacyRouting": false, "datapathMode": "netkit-l2",
			"mapDynamicSizeRatio": 0.005, "preallocateMaps": true,
		},
		"enableIPv4BIGTCP":     true,
		"bandwidthManager":     map[string]any{"enabled": true, "bbr": true},
		"loadBalancer":         map[string]any{"algorithm": "maglev", "mode": "hybrid", "acceleration": "best-effort", "dsrDispatch": "opt"},
		"maglev":               map[string]any{"tableSize": 16381, "hashSeed": "JLfvgnHc2kaSUFaI"},
		"socketLB":             map[string]any{"enabled": true},
		"MTU":                  0,
		"podAnnotations":       map[string]any{"prometheus.io/scrape": "true"},
		"enableIPv4Masquerade": false,
	}
	if got := HelmValues(v); !reflect.DeepEqual(got, want) {
		t.Fatalf("HelmValues:\n got %#v\nwant %#v", got, want)
	}
	if got := HelmValues(&ebbflowv1.CiliumValues{KubeProxyReplacement: b(false)}); got["kubeProxyReplacement"] != "false" {
		t.Fatalf("kubeProxyReplacement false = %#v", got["kubeProxyReplacement"])
	}
	if got := HelmValues(nil); len(got) != 0 {
		t.Fatalf("HelmValues(nil) = %v", got)
	}
}

func TestExpectedConfig(t *testing.T) {
	v := &ebbflowv1.CiliumValues{
		KubeProxyReplacement:            b(true),
		K8SServiceHost:                  "api.example.com",
		K8SServicePort:                  i32(6443),
		RoutingMode:                     native,
		TunnelProtocol:                  ebbflowv1.TunnelProtocol_TUNNEL_PROTOCOL_GENEVE,
		AutoDirectNodeRoutes:            b(true),
		BpfMasquerade:                   b(true),
		BpfHostLegacyRouting:            b(false),
		BpfMapDynamicSizeRatio:          f64(0.0025),
		EnableIpv6BigTcp:                b(true),
		InstallNoConntrackIptablesRules: b(true),
		LoadBalancerMode:                ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_DSR,
		LoadBalancerAcceleration:        ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_NATIVE,
		MaglevTableSize:                 i32(65521),
		HubbleEnabled:                   b(false),
		L7Proxy:                         b(true),
		Mtu:                             i32(9000),
		Extra:                           extra("enableIPv4Masquerade", false),
	}
	want := map[string]string{
		"kube-proxy-replacement":              "true",
		"routing-mode":                        "native",
		"tunnel-protocol":                     "geneve",
		"auto-direct-node-routes":             "true",
		"enable-bpf-masquerade":               "true",
		"enable-host-legacy-routing":          "false",
		"bpf-map-dynamic-size-ratio":          "0.0025",
		"enable-ipv6-big-tcp":                 "true",
		"install-no-conntrack-iptables-rules": "true",
		"bpf-lb-mode":                         "dsr",
		"bpf-lb-acceleration":                 "native",
		"bpf-lb-maglev-table-size":            "65521",
		"enable-hubble":                       "false",
		"enable-l7-proxy":                     "true",
		"mtu":                                 "9000",
	}
	if got := ExpectedConfig(v); !reflect.DeepEqual(got, want) {
		t.Fatalf("ExpectedConfig:\n got %v\nwant %v", got, want)
	}
}

func TestConfigDefaultsCoverExpectedConfig(t *testing.T) {
	d := ConfigDefaults()
	for _, f := range valueFields {
		if _, ok := d[f.config]; f.config != "" && !ok {
			t.Errorf("no default for %s", f.config)
		}
	}
	if len(d) != len(configDefaults) {
		t.Fatal("extra defaults")
	}
}

func TestParkedDaemonSets(t *testing.T) {
	ds := func(list ...string) []*ebbflowv1.DaemonSetRef {
		var out []*ebbflowv1.DaemonSetRef
		for i := 0; i < len(list); i += 2 {
			out = append(out, &ebbflowv1.DaemonSetRef{Namespace: list[i], Name: list[i+1]})
		}
		return out
	}
	tests := []struct {
		name     string
		platform string
		kpr      *ebbflowv1.KprPhase
		want     []*ebbflowv1.DaemonSetRef
	}{
		{name: "no kpr phase parks nothing"},
		{name: "default kube-proxy", kpr: &ebbflowv1.KprPhase{}, want: ds("kube-system", "kube-proxy")},
		{name: "eks default adds aws-node", platform: "eks", kpr: &ebbflowv1.KprPhase{}, want: ds("kube-system", "kube-proxy", "kube-system", "aws-node")},
		{name: "listed, namespace defaulted", kpr: &ebbflowv1.KprPhase{ParkDaemonSets: ds("", "kube-proxy", "net", "legacy-lb")}, want: ds("kube-system", "kube-proxy", "net", "legacy-lb")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &ebbflowv1.ProfileSpec{Platform: tt.platform, Kpr: tt.kpr}
			got := ParkedDaemonSets(s)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s := &ebbflowv1.ProfileSpec{Kpr: &ebbflowv1.KprPhase{}}
	Defaults(s)
	want := &ebbflowv1.ProfileSpec{
		Chart: &ebbflowv1.ChartRef{Name: "cilium", ReleaseName: "cilium", Namespace: "kube-system"},
		Kpr:   &ebbflowv1.KprPhase{Mode: ebbflowv1.KprMode_KPR_MODE_CLUSTER_WIDE},
	}
	if !proto.Equal(s, want) {
		t.Fatalf("Defaults: got %v, want %v", s, want)
	}
	Defaults(nil)
}

func TestEnumSpelling(t *testing.T) {
	ed := ebbflowv1.LoadBalancerAcceleration(0).Descriptor()
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"best-effort", "LOAD_BALANCER_ACCELERATION_BEST_EFFORT", true},
		{"BEST_EFFORT", "LOAD_BALANCER_ACCELERATION_BEST_EFFORT", true},
		{"Native", "LOAD_BALANCER_ACCELERATION_NATIVE", true},
		{"LOAD_BALANCER_ACCELERATION_DISABLED", "LOAD_BALANCER_ACCELERATION_DISABLED", true},
		{"unspecified", "", false},
		{"turbo", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ev, ok := enumFromShort(ed, tt.in)
			if ok != tt.ok || (ok && string(ev.Name()) != tt.want) {
				t.Fatalf("enumFromShort(%q) = %v, %v", tt.in, ev, ok)
			}
		})
	}
	if s, _ := enumShort(ebbflowv1.KprMode(0).Descriptor(), 2); s != "node-by-node" {
		t.Fatalf("enumShort = %q", s)
	}
}
