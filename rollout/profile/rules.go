package profile

// This file is one table, read top to bottom: every cross-field rule of a profile (its id,
// severity and summary) beside the check that enforces it; splitting it would part rules from
// their checks.

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Rule documents one validation rule.
type Rule struct {
	ID string
	// Severity is "error" or "warning".
	Severity string
	Summary  string
}

// Rules lists every rule Validate can report, errors first.
func Rules() []Rule {
	var out []Rule
	for _, r := range fieldRules {
		out = append(out, Rule{ID: r[0], Severity: "error", Summary: r[1]})
	}
	for _, r := range crossRules {
		out = append(out, Rule{ID: r.id, Severity: "error", Summary: r.summary})
	}
	out = append(out, Rule{ID: ruleTurnOff, Severity: "error", Summary: "a phase may not turn off (or change) a value an earlier phase set unless it lists the key in allowTurnOff"})
	for _, w := range warningRules {
		out = append(out, Rule{ID: w.id, Severity: "warning", Summary: w.summary})
	}
	out = append(out,
		Rule{ID: "extra-unvalidated", Severity: "warning", Summary: "an extra Helm key is passed through without validation"},
		Rule{ID: "chart-version-unpinned", Severity: "warning", Summary: "the chart has no version constraint"},
	)
	return out
}

// fieldRules are the single-field rules (validate.go), for Rules.
var fieldRules = [][2]string{
	{"required", "the field must be set"},
	{"dns-label", "a DNS-1123 label: lower case, digits and '-', at most 63"},
	{"dns-subdomain", "a Kubernetes object name"},
	{"max-length", "a string is at most 4 KiB"},
	{"max-items", "a list or map is within its size limit"},
	{"max-depth", "free-form values are not nested too deep"},
	{"enum", "an enum value is one of the defined values"},
	{"range", "a number is within its range"},
	{"chart-repository", "the chart repository is https://, oci:// or a local path starting with / or ./"},
	{"semver-constraint", "the chart version is a semver constraint"},
	{"release-name", "the Helm release name is valid"},
	{"host", "k8sServiceHost is a host name or IP address"},
	{"cidr", "ipv4NativeRoutingCIDR is an IPv4 CIDR"},
	{"maglev-table-size", "maglev.tableSize is one of Cilium's primes"},
	{"maglev-hash-seed", "maglev.hashSeed is base64 of 12 bytes"},
	{"extra-key", "an extra key is a dotted Helm key"},
	{"extra-typed-key", "an extra key does not set or cover a typed value"},
	{"allow-turn-off-key", "an allowTurnOff entry is a Helm key"},
	{"duplicate", "a list entry appears once"},
	{"l7-policy-kind", "an l7 policy is a cilium.io/v2 CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy"},
	{"l7-policy-namespace", "an l7 policy's namespace fits its kind and the phase's namespaces"},
	{"park-cilium", "the kpr phase does not park Cilium itself"},
}

// ruleCtx is what a cross-field rule sees: the cumulative values at one phase.
type ruleCtx struct {
	spec  *ebbflowv1.ProfileSpec
	phase ebbflowv1.Phase
	v     *ebbflowv1.CiliumValues
}

// crossRule is one rule over the cumulative values at a phase.
type crossRule struct {
	id      string
	summary string
	// fields the rule reads, as CiliumValues JSON names or "extra:<key>". The issue names the
	// first of them that the phase itself sets, else the first.
	fields []string
	// check returns "" when the rule holds, else the message.
	check func(c ruleCtx) string
}

var (
	bigTCPFields  = []string{"enableIpv4BigTcp", "enableIpv6BigTcp"}
	hostRouteDeps = []string{"bpfHostLegacyRouting", "kubeProxyReplacement", "bpfMasquerade", "extra:" + extraIPv4Masq}
)

const (
	extraIPv4Masq   = "enableIPv4Masquerade"
	extraEncryption = "encryption.enabled"
	extraChaining   = "cni.chainingMode"
	ruleTurnOff     = "turn-off-not-allowed"
)

func with(a []string, b ...string) []string { return append(append([]string(nil), a...), b...) }

// crossRules is the table of cross-field rules. Each has a failing and a passing test case.
var crossRules = []crossRule{
	{
		id: "xdp-needs-native-routing", summary: "XDP acceleration needs routingMode=native",
		fields: []string{"loadBalancerAcceleration", "routingMode"},
		check: func(c ruleCtx) string {
			if accel(c.v) && !nativeRouting(c.v) {
				return fmt.Sprintf("XDP acceleration (loadBalancer.acceleration=%s) needs routingMode=native, but routingMode is %s here", show(c.v, "loadBalancerAcceleration"), show(c.v, "routingMode"))
			}
			return ""
		},
	},
	{
		id: "xdp-needs-kpr", summary: "XDP acceleration needs kubeProxyReplacement=true",
		fields: []string{"loadBalancerAcceleration", "kubeProxyReplacement"},
		check: func(c ruleCtx) string {
			if accel(c.v) && !kpr(c.v) {
				return fmt.Sprintf("XDP acceleration (loadBalancer.acceleration=%s) needs kubeProxyReplacement=true, but it is %s here", show(c.v, "loadBalancerAcceleration"), show(c.v, "kubeProxyReplacement"))
			}
			return ""
		},
	},
	{
		id: "big-tcp-needs-no-tunnel", summary: "BIG TCP needs routingMode=native (no tunnel)",
		fields: with(bigTCPFields, "routingMode"),
		check: func(c ruleCtx) string {
			if bigTCP(c.v) && !nativeRouting(c.v) {
				return fmt.Sprintf("BIG TCP needs routingMode=native (no tunnel), but routingMode is %s here", show(c.v, "routingMode"))
			}
			return ""
		},
	},
	{
		id: "big-tcp-needs-kpr", summary: "BIG TCP needs kubeProxyReplacement=true",
		fields: with(bigTCPFields, "kubeProxyReplacement"),
		check: func(c ruleCtx) string {
			if bigTCP(c.v) && !kpr(c.v) {
				return fmt.Sprintf("BIG TCP needs kubeProxyReplacement=true, but it is %s here", show(c.v, "kubeProxyReplacement"))
			}
			return ""
		},
	},
	{
		id: "big-tcp-needs-bpf-masquerade", summary: "BIG TCP needs bpf.masquerade=true (or masquerading off)",
		fields: with(bigTCPFields, "bpfMasquerade", "extra:"+extraIPv4Masq),
		check: func(c ruleCtx) string {
			if bigTCP(c.v) && !masqOK(c.v) {
				return fmt.Sprintf("BIG TCP needs bpf.masquerade=true (or %s=false), but bpf.masquerade is %s here", extraIPv4Masq, show(c.v, "bpfMasquerade"))
			}
			return ""
		},
	},
	{
		id: "big-tcp-needs-host-routing", summary: "BIG TCP needs eBPF host routing (bpf.hostLegacyRouting not true)",
		fields: with(bigTCPFields, "bpfHostLegacyRouting"),
		check: func(c ruleCtx) string {
			if bigTCP(c.v) && legacyRouting(c.v) {
				return "BIG TCP needs eBPF host routing, but bpf.hostLegacyRouting is true here"
			}
			return ""
		},
	},
	{
		id: "big-tcp-needs-no-encryption", summary: "BIG TCP does not work with encryption",
		fields: with(bigTCPFields, "extra:"+extraEncryption),
		check: func(c ruleCtx) string {
			if b, ok := extraBool(c.v, extraEncryption); bigTCP(c.v) && ok && b {
				return "BIG TCP does not work with encryption, but " + extraEncryption + " is true here"
			}
			return ""
		},
	},
	{
		id: "dsr-geneve-needs-geneve-tunnel", summary: "loadBalancer.dsrDispatch=geneve needs tunnelProtocol=geneve",
		fields: []string{"loadBalancerDsrDispatch", "tunnelProtocol"},
		check: func(c ruleCtx) string {
			if c.v.GetLoadBalancerDsrDispatch() == ebbflowv1.DsrDispatch_DSR_DISPATCH_GENEVE && c.v.GetTunnelProtocol() != ebbflowv1.TunnelProtocol_TUNNEL_PROTOCOL_GENEVE {
				return fmt.Sprintf("loadBalancer.dsrDispatch=geneve needs tunnelProtocol=geneve, but tunnelProtocol is %s here", show(c.v, "tunnelProtocol"))
			}
			return ""
		},
	},
	{
		id: "dsr-opt-needs-native-routing", summary: "DSR (dsr or hybrid) with dsrDispatch=opt needs routingMode=native",
		fields: []string{"loadBalancerMode", "loadBalancerDsrDispatch", "routingMode"},
		check: func(c ruleCtx) string {
			if dsrMode(c.v) && dsrDispatch(c.v) == ebbflowv1.DsrDispatch_DSR_DISPATCH_OPT && !nativeRouting(c.v) {
				return fmt.Sprintf("loadBalancer.mode=%s with dsrDispatch=%s needs routingMode=native, but routingMode is %s here", show(c.v, "loadBalancerMode"), show(c.v, "loadBalancerDsrDispatch"), show(c.v, "routingMode"))
			}
			return ""
		},
	},
	{
		id: "bbr-needs-bandwidth-manager", summary: "bandwidthManager.bbr needs bandwidthManager.enabled=true",
		fields: []string{"bandwidthManagerBbr", "bandwidthManagerEnabled"},
		check: func(c ruleCtx) string {
			if c.v.GetBandwidthManagerBbr() && !c.v.GetBandwidthManagerEnabled() {
				return fmt.Sprintf("bandwidthManager.bbr needs bandwidthManager.enabled=true, but it is %s here", show(c.v, "bandwidthManagerEnabled"))
			}
			return ""
		},
	},
	{
		id: "bbr-needs-host-routing", summary: "bandwidthManager.bbr needs eBPF host routing",
		fields: with([]string{"bandwidthManagerBbr"}, hostRouteDeps...),
		check: func(c ruleCtx) string {
			if missing := hostRoutingMissing(c.v); c.v.GetBandwidthManagerBbr() && missing != "" {
				return "bandwidthManager.bbr needs eBPF host routing, which is not available here: " + missing
			}
			return ""
		},
	},
	{
		id: "bandwidth-manager-needs-kpr", summary: "bandwidthManager.enabled needs kubeProxyReplacement=true",
		fields: []string{"bandwidthManagerEnabled", "kubeProxyReplacement"},
		check: func(c ruleCtx) string {
			if c.v.GetBandwidthManagerEnabled() && !kpr(c.v) {
				return fmt.Sprintf("bandwidthManager.enabled needs kubeProxyReplacement=true, but it is %s here", show(c.v, "kubeProxyReplacement"))
			}
			return ""
		},
	},
	{
		id: "host-routing-needs-kpr", summary: "eBPF host routing (bpf.hostLegacyRouting=false) needs kubeProxyReplacement=true",
		fields: []string{"bpfHostLegacyRouting", "kubeProxyReplacement"},
		check: func(c ruleCtx) string {
			if explicitHostRouting(c.v) && !kpr(c.v) {
				return fmt.Sprintf("eBPF host routing (bpf.hostLegacyRouting=false) needs kubeProxyReplacement=true, but it is %s here; Cilium would silently fall back to legacy routing", show(c.v, "kubeProxyReplacement"))
			}
			return ""
		},
	},
	{
		id: "host-routing-needs-bpf-masquerade", summary: "eBPF host routing (bpf.hostLegacyRouting=false) needs bpf.masquerade=true (or masquerading off)",
		fields: []string{"bpfHostLegacyRouting", "bpfMasquerade", "extra:" + extraIPv4Masq},
		check: func(c ruleCtx) string {
			if explicitHostRouting(c.v) && !masqOK(c.v) {
				return fmt.Sprintf("eBPF host routing (bpf.hostLegacyRouting=false) needs bpf.masquerade=true (or %s=false), but bpf.masquerade is %s here; Cilium would silently fall back to legacy routing", extraIPv4Masq, show(c.v, "bpfMasquerade"))
			}
			return ""
		},
	},
	{
		id: "no-conntrack-needs-native-routing", summary: "installNoConntrackIptablesRules needs routingMode=native",
		fields: []string{"installNoConntrackIptablesRules", "routingMode"},
		check: func(c ruleCtx) string {
			if c.v.GetInstallNoConntrackIptablesRules() && !nativeRouting(c.v) {
				return fmt.Sprintf("installNoConntrackIptablesRules needs routingMode=native, but routingMode is %s here", show(c.v, "routingMode"))
			}
			return ""
		},
	},
	{
		id: "no-conntrack-needs-kpr", summary: "installNoConntrackIptablesRules needs kubeProxyReplacement=true",
		fields: []string{"installNoConntrackIptablesRules", "kubeProxyReplacement"},
		check: func(c ruleCtx) string {
			if c.v.GetInstallNoConntrackIptablesRules() && !kpr(c.v) {
				return fmt.Sprintf("installNoConntrackIptablesRules needs kubeProxyReplacement=true, but it is %s here", show(c.v, "kubeProxyReplacement"))
			}
			return ""
		},
	},
	{
		id: "no-conntrack-needs-bpf-masquerade", summary: "installNoConntrackIptablesRules needs BPF masquerading or none",
		fields: []string{"installNoConntrackIptablesRules", "bpfMasquerade", "extra:" + extraIPv4Masq},
		check: func(c ruleCtx) string {
			if c.v.GetInstallNoConntrackIptablesRules() && !masqOK(c.v) {
				return fmt.Sprintf("installNoConntrackIptablesRules needs bpf.masquerade=true or %s=false, but iptables masquerading is in use here (bpf.masquerade is %s)", extraIPv4Masq, show(c.v, "bpfMasquerade"))
			}
			return ""
		},
	},
	{
		id: "no-conntrack-no-cni-chaining", summary: "installNoConntrackIptablesRules does not work with CNI chaining",
		fields: []string{"installNoConntrackIptablesRules", "extra:" + extraChaining},
		check: func(c ruleCtx) string {
			if m, ok := extraString(c.v, extraChaining); c.v.GetInstallNoConntrackIptablesRules() && ok && m != "" && m != "none" {
				return fmt.Sprintf("installNoConntrackIptablesRules does not work with CNI chaining, but %s is %q here", extraChaining, clip(m))
			}
			return ""
		},
	},
	{
		id: "netkit-needs-host-routing", summary: "bpf.datapathMode netkit or netkit-l2 needs eBPF host routing",
		fields: with([]string{"bpfDatapathMode"}, hostRouteDeps...),
		check: func(c ruleCtx) string {
			if missing := hostRoutingMissing(c.v); netkit(c.v) && missing != "" {
				return fmt.Sprintf("bpf.datapathMode=%s needs eBPF host routing, which is not available here: %s", show(c.v, "bpfDatapathMode"), missing)
			}
			return ""
		},
	},
	{
		id: "park-needs-kpr", summary: "parking kube-proxy in the kpr phase needs kubeProxyReplacement=true from then on",
		fields: []string{"kubeProxyReplacement"},
		check: func(c ruleCtx) string {
			if phaseIndex(c.phase) < phaseIndex(ebbflowv1.Phase_PHASE_KPR) {
				return ""
			}
			parked := ParkedDaemonSets(c.spec)
			if len(parked) == 0 || kpr(c.v) {
				return ""
			}
			names := make([]string, len(parked))
			for i, d := range parked {
				names[i] = d.GetNamespace() + "/" + d.GetName()
			}
			return fmt.Sprintf("the kpr phase parks %s, which needs kubeProxyReplacement=true, but it is %s here: services would stop working", strings.Join(names, ", "), show(c.v, "kubeProxyReplacement"))
		},
	},
	{
		id: "l7-policies-need-l7-proxy", summary: "the l7 phase's policies need l7Proxy (not false)",
		fields: []string{"l7Proxy"},
		check: func(c ruleCtx) string {
			if phaseIndex(c.phase) < phaseIndex(ebbflowv1.Phase_PHASE_L7) || len(c.spec.GetL7().GetPolicies()) == 0 {
				return ""
			}
			if c.v.L7Proxy != nil && !c.v.GetL7Proxy() {
				return "the l7 phase applies L7 policies, which need l7Proxy, but l7Proxy is false here"
			}
			return ""
		},
	},
}

// checkRules evaluates every cross-field rule on the cumulative values at each phase. A broken
// rule is reported at the phase where it first breaks, and again at any later phase that itself
// sets one of the rule's fields while it is still broken.
func checkRules(errs *Issues, spec *ebbflowv1.ProfileSpec) {
	broken := map[string]bool{}
	for _, p := range phaseOrder {
		cum := CumulativeValues(spec, p)
		own := PhaseValues(spec, p)
		for _, r := range crossRules {
			msg := r.check(ruleCtx{spec: spec, phase: p, v: cum})
			if msg != "" && (!broken[r.id] || touches(own, r.fields)) {
				errs.Add(fieldFor(p, own, r.fields), r.id, "%s", msg)
			}
			broken[r.id] = msg != ""
		}
	}
	checkTurnOff(errs, spec)
}

// checkTurnOff reports a phase that turns off a bool (true -> false) or changes an enum that an
// earlier phase set, unless the phase lists the Helm key in allowTurnOff. Extra bools count too.
func checkTurnOff(errs *Issues, spec *ebbflowv1.ProfileSpec) {
	for i := 1; i < len(phaseOrder); i++ {
		p := phaseOrder[i]
		own := PhaseValues(spec, p)
		if own == nil {
			continue
		}
		prev := CumulativeValues(spec, phaseOrder[i-1])
		allowed := map[string]bool{}
		for _, k := range own.GetAllowTurnOff() {
			allowed[normalizeTurnOffKey(k)] = true
		}
		for _, f := range valueFields {
			if !isSet(own, f.json) || !isSet(prev, f.json) || allowed[f.helm] {
				continue
			}
			fd := fieldDesc(f.json)
			was, now := prev.ProtoReflect().Get(fd), own.ProtoReflect().Get(fd)
			var off bool
			switch fd.Kind() {
			case protoreflect.BoolKind:
				off = was.Bool() && !now.Bool()
			case protoreflect.EnumKind:
				off = was.Enum() != now.Enum()
			}
			if off {
				errs.Add(valuesPath(p)+"."+f.json, ruleTurnOff,
					"phase %s turns off %s (%s -> %s) that phase %s set; list %q in allowTurnOff to allow it",
					PhaseName(p), f.helm, show(prev, f.json), show(own, f.json), PhaseName(lastSetter(spec, i, "", f.json)), f.helm)
			}
		}
		for _, k := range sortedKeys(own.GetExtra()) {
			now, ok1 := extraBool(own, k)
			was, ok2 := extraBool(prev, k)
			if ok1 && ok2 && was && !now && !allowed[k] {
				errs.Add(pathKey(valuesPath(p)+".extra", k), ruleTurnOff,
					"phase %s turns off %s (true -> false) that phase %s set; list %q in allowTurnOff to allow it",
					PhaseName(p), k, PhaseName(lastSetter(spec, i, k, "")), k)
			}
		}
	}
}

// lastSetter is the last phase before phaseOrder[i] whose own values set the field (json) or the
// extra key.
func lastSetter(spec *ebbflowv1.ProfileSpec, i int, extraKey, json string) ebbflowv1.Phase {
	for j := i - 1; j >= 0; j-- {
		v := PhaseValues(spec, phaseOrder[j])
		if json != "" && isSet(v, json) {
			return phaseOrder[j]
		}
		if _, ok := v.GetExtra()[extraKey]; extraKey != "" && ok {
			return phaseOrder[j]
		}
	}
	return phaseOrder[0]
}

// touches reports whether the phase's own values set any of fields.
func touches(own *ebbflowv1.CiliumValues, fields []string) bool {
	for _, f := range fields {
		if fieldSet(own, f) {
			return true
		}
	}
	return false
}

func fieldSet(v *ebbflowv1.CiliumValues, f string) bool {
	if k, ok := strings.CutPrefix(f, "extra:"); ok {
		_, set := v.GetExtra()[k]
		return set
	}
	return isSet(v, f)
}

// fieldFor is the path an issue names: the first of fields the phase sets, else the first.
func fieldFor(p ebbflowv1.Phase, own *ebbflowv1.CiliumValues, fields []string) string {
	pick := fields[0]
	for _, f := range fields {
		if fieldSet(own, f) {
			pick = f
			break
		}
	}
	if k, ok := strings.CutPrefix(pick, "extra:"); ok {
		return pathKey(valuesPath(p)+".extra", k)
	}
	return valuesPath(p) + "." + pick
}

// warningRule is a warning over the cumulative values at a phase, reported once, at the first
// phase where it applies.
type warningRule struct {
	id      string
	summary string
	fields  []string
	check   func(c ruleCtx) string
}

var warningRules = []warningRule{
	{
		id: "kpr-service-host-unset", summary: "kube-proxy replacement without k8sServiceHost/k8sServicePort in the profile relies on the cluster's current values",
		fields: []string{"kubeProxyReplacement", "k8sServiceHost", "k8sServicePort"},
		check: func(c ruleCtx) string {
			if kpr(c.v) && (c.v.GetK8SServiceHost() == "" || c.v.K8SServicePort == nil) {
				return "kubeProxyReplacement=true without k8sServiceHost and k8sServicePort in the profile: each cluster's current Helm values must have them (preflight checks), or its agents lose the API server"
			}
			return ""
		},
	},
	{
		id: "bandwidth-manager-egress-l7", summary: "the bandwidth manager is disabled for pods selected by egress L7 policies",
		fields: []string{"bandwidthManagerEnabled"},
		check: func(c ruleCtx) string {
			if phaseIndex(c.phase) < phaseIndex(ebbflowv1.Phase_PHASE_L7) || !c.v.GetBandwidthManagerEnabled() {
				return ""
			}
			if i := egressL7Policy(c.spec); i >= 0 {
				return fmt.Sprintf("the bandwidth manager (and BBR) is disabled for pods selected by egress L7 policies such as spec.l7.policies[%d]", i)
			}
			return ""
		},
	},
	{
		id: "netkit-new-nodes", summary: "netkit cannot be switched on in place: only new nodes get it",
		fields: []string{"bpfDatapathMode"},
		check: func(c ruleCtx) string {
			if netkit(c.v) {
				return fmt.Sprintf("bpf.datapathMode=%s cannot be switched in place or mixed with veth: existing nodes must be replaced by new nodes after this phase", show(c.v, "bpfDatapathMode"))
			}
			return ""
		},
	},
	{
		id: "big-tcp-nic", summary: "BIG TCP takes effect only on mlx4/mlx5/ice NICs",
		fields: bigTCPFields,
		check: func(c ruleCtx) string {
			if bigTCP(c.v) && managedPlatforms[platform(c.spec)] {
				return fmt.Sprintf("BIG TCP takes effect only on mlx4/mlx5/ice NICs; %s nodes usually have other NICs (the plan checks each node's driver)", platform(c.spec))
			}
			return ""
		},
	},
	{
		id: "no-conntrack-managed-cloud", summary: "installNoConntrackIptablesRules is not supported on managed clouds",
		fields: []string{"installNoConntrackIptablesRules"},
		check: func(c ruleCtx) string {
			if c.v.GetInstallNoConntrackIptablesRules() && managedPlatforms[platform(c.spec)] {
				return fmt.Sprintf("installNoConntrackIptablesRules is not supported on managed clouds (platform %s)", platform(c.spec))
			}
			return ""
		},
	},
	{
		id: "dsr-opt-cloud", summary: "DSR with dsrDispatch=opt on a cloud fabric that may drop IP options",
		fields: []string{"loadBalancerMode", "loadBalancerDsrDispatch"},
		check: func(c ruleCtx) string {
			if dsrMode(c.v) && dsrDispatch(c.v) == ebbflowv1.DsrDispatch_DSR_DISPATCH_OPT && managedPlatforms[platform(c.spec)] {
				return fmt.Sprintf("loadBalancer.mode=%s with dsrDispatch=opt carries the service address in an IP option, which %s's fabric may drop", show(c.v, "loadBalancerMode"), platform(c.spec))
			}
			return ""
		},
	},
	{
		id: "xdp-phase-no-acceleration", summary: "the xdp phase does not turn on XDP acceleration",
		fields: []string{"loadBalancerAcceleration"},
		check: func(c ruleCtx) string {
			if c.phase == ebbflowv1.Phase_PHASE_XDP && c.spec.GetXdp() != nil && !accel(c.v) {
				return "the xdp phase leaves loadBalancer.acceleration " + show(c.v, "loadBalancerAcceleration")
			}
			return ""
		},
	},
	{
		id: "maglev-unused", summary: "Maglev settings without loadBalancer.algorithm=maglev",
		fields: []string{"maglevTableSize", "maglevHashSeed", "loadBalancerAlgorithm"},
		check: func(c ruleCtx) string {
			if c.phase == ebbflowv1.Phase_PHASE_XDP && (c.v.MaglevTableSize != nil || c.v.GetMaglevHashSeed() != "") &&
				c.v.GetLoadBalancerAlgorithm() != ebbflowv1.LoadBalancerAlgorithm_LOAD_BALANCER_ALGORITHM_MAGLEV {
				return "maglev settings have no effect: loadBalancer.algorithm is " + show(c.v, "loadBalancerAlgorithm")
			}
			return ""
		},
	},
}

// checkWarnings adds each warning once, at the first phase where it applies, and one
// extra-unvalidated warning per extra key per phase.
func checkWarnings(warns *Issues, spec *ebbflowv1.ProfileSpec) {
	done := map[string]bool{}
	for _, p := range phaseOrder {
		cum := CumulativeValues(spec, p)
		own := PhaseValues(spec, p)
		for _, w := range warningRules {
			if done[w.id] {
				continue
			}
			if msg := w.check(ruleCtx{spec: spec, phase: p, v: cum}); msg != "" {
				warns.Add(fieldFor(p, own, w.fields), w.id, "%s", msg)
				done[w.id] = true
			}
		}
		for _, k := range sortedKeys(own.GetExtra()) {
			warns.Add(pathKey(valuesPath(p)+".extra", k), "extra-unvalidated", "%s is passed to Helm as is, without validation", clip(k))
		}
	}
}

// egressL7Policy returns the index of the first l7 policy with an egress L7 rule, or -1.
func egressL7Policy(spec *ebbflowv1.ProfileSpec) int {
	for i, pol := range spec.GetL7().GetPolicies() {
		f := pol.GetFields()
		specs := []any{}
		if s := f["spec"].GetStructValue(); s != nil {
			specs = append(specs, s.AsMap())
		}
		if l := f["specs"].GetListValue(); l != nil {
			specs = append(specs, l.AsSlice()...)
		}
		for _, s := range specs {
			if hasEgressL7(s) {
				return i
			}
		}
	}
	return -1
}

func hasEgressL7(spec any) bool {
	m, _ := spec.(map[string]any)
	egress, _ := m["egress"].([]any)
	for _, e := range egress {
		em, _ := e.(map[string]any)
		ports, _ := em["toPorts"].([]any)
		for _, p := range ports {
			pm, _ := p.(map[string]any)
			if rules, ok := pm["rules"].(map[string]any); ok && len(rules) > 0 {
				return true
			}
		}
	}
	return false
}

// Predicates over cumulative values, with Cilium's defaults for unset fields.

func kpr(v *ebbflowv1.CiliumValues) bool { return v.GetKubeProxyReplacement() }

func nativeRouting(v *ebbflowv1.CiliumValues) bool {
	return v.GetRoutingMode() == ebbflowv1.RoutingMode_ROUTING_MODE_NATIVE
}

func accel(v *ebbflowv1.CiliumValues) bool {
	a := v.GetLoadBalancerAcceleration()
	return a == ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_NATIVE ||
		a == ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_BEST_EFFORT
}

func bigTCP(v *ebbflowv1.CiliumValues) bool {
	return v.GetEnableIpv4BigTcp() || v.GetEnableIpv6BigTcp()
}

func dsrMode(v *ebbflowv1.CiliumValues) bool {
	m := v.GetLoadBalancerMode()
	return m == ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_DSR || m == ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_HYBRID
}

// dsrDispatch is the dispatch in effect; opt by default.
func dsrDispatch(v *ebbflowv1.CiliumValues) ebbflowv1.DsrDispatch {
	if d := v.GetLoadBalancerDsrDispatch(); d != ebbflowv1.DsrDispatch_DSR_DISPATCH_UNSPECIFIED {
		return d
	}
	return ebbflowv1.DsrDispatch_DSR_DISPATCH_OPT
}

func netkit(v *ebbflowv1.CiliumValues) bool {
	m := v.GetBpfDatapathMode()
	return m == ebbflowv1.DatapathMode_DATAPATH_MODE_NETKIT || m == ebbflowv1.DatapathMode_DATAPATH_MODE_NETKIT_L2
}

func legacyRouting(v *ebbflowv1.CiliumValues) bool {
	return v.BpfHostLegacyRouting != nil && v.GetBpfHostLegacyRouting()
}

func explicitHostRouting(v *ebbflowv1.CiliumValues) bool {
	return v.BpfHostLegacyRouting != nil && !v.GetBpfHostLegacyRouting()
}

// masqOK: BPF masquerading, or IPv4 masquerading turned off altogether.
func masqOK(v *ebbflowv1.CiliumValues) bool {
	if v.GetBpfMasquerade() {
		return true
	}
	b, ok := extraBool(v, extraIPv4Masq)
	return ok && !b
}

// hostRoutingMissing says why eBPF host routing is not available, or "" when it is.
func hostRoutingMissing(v *ebbflowv1.CiliumValues) string {
	var why []string
	if legacyRouting(v) {
		why = append(why, "bpf.hostLegacyRouting is true")
	}
	if !kpr(v) {
		why = append(why, "kubeProxyReplacement is "+show(v, "kubeProxyReplacement"))
	}
	if !masqOK(v) {
		why = append(why, "bpf.masquerade is "+show(v, "bpfMasquerade"))
	}
	return strings.Join(why, ", ")
}

func extraBool(v *ebbflowv1.CiliumValues, k string) (bool, bool) {
	b, ok := v.GetExtra()[k].GetKind().(*structpb.Value_BoolValue)
	if !ok {
		return false, false
	}
	return b.BoolValue, true
}

func extraString(v *ebbflowv1.CiliumValues, k string) (string, bool) {
	s, ok := v.GetExtra()[k].GetKind().(*structpb.Value_StringValue)
	if !ok {
		return "", false
	}
	return s.StringValue, true
}

// defaults are Cilium's values for unset fields, for messages.
var defaults = map[string]string{
	"kubeProxyReplacement":     "false",
	"routingMode":              "tunnel",
	"tunnelProtocol":           "vxlan",
	"bpfMasquerade":            "false",
	"bpfHostLegacyRouting":     "false",
	"bpfDatapathMode":          "veth",
	"bandwidthManagerEnabled":  "false",
	"loadBalancerAlgorithm":    "random",
	"loadBalancerMode":         "snat",
	"loadBalancerAcceleration": "disabled",
	"loadBalancerDsrDispatch":  "opt",
}

var fieldByJSON = func() map[string]valueField {
	m := map[string]valueField{}
	for _, f := range valueFields {
		m[f.json] = f
	}
	return m
}()

// show renders a field's value in v for a message: its Cilium spelling, or the default marked
// as such when unset.
func show(v *ebbflowv1.CiliumValues, json string) string {
	if val, ok := fieldValue(v, fieldByJSON[json]); ok {
		return fmt.Sprint(val)
	}
	if d, ok := defaults[json]; ok {
		return "unset (" + d + ")"
	}
	return "unset"
}
