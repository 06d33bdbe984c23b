package profile

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Chart defaults, applied by Defaults and assumed when a field is empty.
const (
	DefaultChartName   = "cilium"
	DefaultReleaseName = "cilium"
	DefaultNamespace   = "kube-system"
)

// phaseOrder is the order phases run in and are layered in.
var phaseOrder = []ebbflowv1.Phase{
	ebbflowv1.Phase_PHASE_BASELINE,
	ebbflowv1.Phase_PHASE_L7,
	ebbflowv1.Phase_PHASE_KPR,
	ebbflowv1.Phase_PHASE_XDP,
}

// AllPhases returns the four phases in the order they run.
func AllPhases() []ebbflowv1.Phase {
	return append([]ebbflowv1.Phase(nil), phaseOrder...)
}

// PhaseName is the phase's short name as used in field paths: baseline, l7, kpr or xdp. An
// unknown phase is named by its number.
func PhaseName(p ebbflowv1.Phase) string {
	switch p {
	case ebbflowv1.Phase_PHASE_BASELINE:
		return "baseline"
	case ebbflowv1.Phase_PHASE_L7:
		return "l7"
	case ebbflowv1.Phase_PHASE_KPR:
		return "kpr"
	case ebbflowv1.Phase_PHASE_XDP:
		return "xdp"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// phaseIndex is p's position in phaseOrder, or -1.
func phaseIndex(p ebbflowv1.Phase) int {
	for i, q := range phaseOrder {
		if q == p {
			return i
		}
	}
	return -1
}

// PhaseValues returns the values the phase itself sets (nil when the phase is absent).
func PhaseValues(spec *ebbflowv1.ProfileSpec, p ebbflowv1.Phase) *ebbflowv1.CiliumValues {
	switch p {
	case ebbflowv1.Phase_PHASE_BASELINE:
		return spec.GetBaseline().GetValues()
	case ebbflowv1.Phase_PHASE_L7:
		return spec.GetL7().GetValues()
	case ebbflowv1.Phase_PHASE_KPR:
		return spec.GetKpr().GetValues()
	case ebbflowv1.Phase_PHASE_XDP:
		return spec.GetXdp().GetValues()
	}
	return nil
}

// phasePresent reports whether the spec has the phase at all.
func phasePresent(spec *ebbflowv1.ProfileSpec, p ebbflowv1.Phase) bool {
	switch p {
	case ebbflowv1.Phase_PHASE_BASELINE:
		return spec.GetBaseline() != nil
	case ebbflowv1.Phase_PHASE_L7:
		return spec.GetL7() != nil
	case ebbflowv1.Phase_PHASE_KPR:
		return spec.GetKpr() != nil
	case ebbflowv1.Phase_PHASE_XDP:
		return spec.GetXdp() != nil
	}
	return false
}

// valuesPath is the field path of a phase's values, e.g. "spec.kpr.values".
func valuesPath(p ebbflowv1.Phase) string {
	return "spec." + PhaseName(p) + ".values"
}

// CumulativeValues lays the values of baseline up to and including phase on top of each other,
// later phases winning, and returns the result as a new message. Extra keys merge key by key;
// allow_turn_off is not carried (it belongs to one phase). An unknown phase yields empty values.
func CumulativeValues(spec *ebbflowv1.ProfileSpec, phase ebbflowv1.Phase) *ebbflowv1.CiliumValues {
	out := &ebbflowv1.CiliumValues{}
	last := phaseIndex(phase)
	for i := 0; i <= last; i++ {
		if v := PhaseValues(spec, phaseOrder[i]); v != nil {
			// proto.Merge copies every populated scalar (later wins) and merges maps by key.
			proto.Merge(out, v)
		}
	}
	out.AllowTurnOff = nil
	return out
}

// valueField ties a typed CiliumValues field to its Helm key and its cilium-config key.
type valueField struct {
	json   string // protojson name, used in field paths
	helm   string // Helm value key (dotted path)
	config string // cilium-config key; "" when the value is not in the ConfigMap
}

// valueFields lists every typed field of CiliumValues, in field-number order. The table of
// cilium-facts.md is the source.
var valueFields = []valueField{
	{"kubeProxyReplacement", "kubeProxyReplacement", "kube-proxy-replacement"},
	{"k8sServiceHost", "k8sServiceHost", ""},
	{"k8sServicePort", "k8sServicePort", ""},
	{"routingMode", "routingMode", "routing-mode"},
	{"tunnelProtocol", "tunnelProtocol", "tunnel-protocol"},
	{"autoDirectNodeRoutes", "autoDirectNodeRoutes", "auto-direct-node-routes"},
	{"ipv4NativeRoutingCidr", "ipv4NativeRoutingCIDR", "ipv4-native-routing-cidr"},
	{"bpfMasquerade", "bpf.masquerade", "enable-bpf-masquerade"},
	{"bpfHostLegacyRouting", "bpf.hostLegacyRouting", "enable-host-legacy-routing"},
	{"bpfDatapathMode", "bpf.datapathMode", "datapath-mode"},
	{"bpfMapDynamicSizeRatio", "bpf.mapDynamicSizeRatio", "bpf-map-dynamic-size-ratio"},
	{"enableIpv4BigTcp", "enableIPv4BIGTCP", "enable-ipv4-big-tcp"},
	{"enableIpv6BigTcp", "enableIPv6BIGTCP", "enable-ipv6-big-tcp"},
	{"installNoConntrackIptablesRules", "installNoConntrackIptablesRules", "install-no-conntrack-iptables-rules"},
	{"bandwidthManagerEnabled", "bandwidthManager.enabled", "enable-bandwidth-manager"},
	{"bandwidthManagerBbr", "bandwidthManager.bbr", "enable-bbr"},
	{"loadBalancerAlgorithm", "loadBalancer.algorithm", "bpf-lb-algorithm"},
	{"loadBalancerMode", "loadBalancer.mode", "bpf-lb-mode"},
	{"loadBalancerAcceleration", "loadBalancer.acceleration", "bpf-lb-acceleration"},
	{"loadBalancerDsrDispatch", "loadBalancer.dsrDispatch", "bpf-lb-dsr-dispatch"},
	{"maglevTableSize", "maglev.tableSize", "bpf-lb-maglev-table-size"},
	{"maglevHashSeed", "maglev.hashSeed", "bpf-lb-maglev-hash-seed"},
	{"hubbleEnabled", "hubble.enabled", "enable-hubble"},
	{"l7Proxy", "l7Proxy", "enable-l7-proxy"},
	{"socketLbEnabled", "socketLB.enabled", "bpf-lb-sock"},
	{"mtu", "MTU", "mtu"},
}

var valuesDesc = (&ebbflowv1.CiliumValues{}).ProtoReflect().Descriptor()

// fieldDesc returns the descriptor of a CiliumValues field by its JSON name.
func fieldDesc(json string) protoreflect.FieldDescriptor {
	return valuesDesc.Fields().ByJSONName(json)
}

// helmKeyByJSON and jsonByHelmKey map between the two names of a typed field.
var (
	helmKeyByJSON = map[string]string{}
	jsonByHelmKey = map[string]string{}
)

func init() {
	for _, f := range valueFields {
		helmKeyByJSON[f.json] = f.helm
		jsonByHelmKey[f.helm] = f.json
	}
}

// isSet reports whether v sets the field (an unset field is not touched).
func isSet(v *ebbflowv1.CiliumValues, json string) bool {
	if v == nil {
		return false
	}
	fd := fieldDesc(json)
	return fd != nil && v.ProtoReflect().Has(fd)
}

// enumPrefix is the common prefix of an enum's value names, e.g. "ROUTING_MODE_".
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	if ed.Values().Len() == 0 {
		return ""
	}
	return strings.TrimSuffix(string(ed.Values().Get(0).Name()), "UNSPECIFIED")
}

// enumShort is the Cilium spelling of an enum value: ROUTING_MODE_NATIVE -> "native",
// LOAD_BALANCER_ACCELERATION_BEST_EFFORT -> "best-effort". ok is false for an undefined number.
func enumShort(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) (string, bool) {
	ev := ed.Values().ByNumber(n)
	if ev == nil {
		return "", false
	}
	s := strings.TrimPrefix(string(ev.Name()), enumPrefix(ed))
	return strings.ReplaceAll(strings.ToLower(s), "_", "-"), true
}

// enumFromShort resolves a proto value name or a short Cilium spelling (any case, '-' or '_').
func enumFromShort(ed protoreflect.EnumDescriptor, s string) (protoreflect.EnumValueDescriptor, bool) {
	if ev := ed.Values().ByName(protoreflect.Name(s)); ev != nil {
		return ev, true
	}
	name := enumPrefix(ed) + strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	if ev := ed.Values().ByName(protoreflect.Name(name)); ev != nil && ev.Number() != 0 {
		return ev, true
	}
	return nil, false
}

// enumChoices lists an enum's short spellings, for error messages.
func enumChoices(ed protoreflect.EnumDescriptor) string {
	var out []string
	for i := 0; i < ed.Values().Len(); i++ {
		ev := ed.Values().Get(i)
		if ev.Number() == 0 {
			continue
		}
		s, _ := enumShort(ed, ev.Number())
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// fieldValue returns the set value of a typed field as the Go value Helm expects: bool, int,
// float64 or string (enums in their Cilium spelling). ok is false when unset or undefined.
func fieldValue(v *ebbflowv1.CiliumValues, f valueField) (any, bool) {
	fd := fieldDesc(f.json)
	if v == nil || fd == nil || !v.ProtoReflect().Has(fd) {
		return nil, false
	}
	val := v.ProtoReflect().Get(fd)
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return val.Bool(), true
	case protoreflect.Int32Kind:
		return int(val.Int()), true
	case protoreflect.DoubleKind:
		return val.Float(), true
	case protoreflect.StringKind:
		return val.String(), true
	case protoreflect.EnumKind:
		return enumShort(fd.Enum(), val.Enum())
	}
	return nil, false
}

// HelmValues renders values as the nested Helm values map with the chart's real keys. Only set
// fields appear. kubeProxyReplacement is the string "true" or "false", as the chart wants. Extra
// keys are laid down first by dotted path ("a\.b" escapes a dot), then the typed fields on top.
func HelmValues(v *ebbflowv1.CiliumValues) map[string]any {
	out := map[string]any{}
	if v == nil {
		return out
	}
	for _, k := range sortedKeys(v.GetExtra()) {
		path, ok := splitHelmKey(k)
		if !ok {
			continue
		}
		setPath(out, path, v.GetExtra()[k].AsInterface())
	}
	for _, f := range valueFields {
		val, ok := fieldValue(v, f)
		if !ok {
			continue
		}
		if f.json == "kubeProxyReplacement" {
			val = strconv.FormatBool(val.(bool))
		}
		path, _ := splitHelmKey(f.helm)
		setPath(out, path, val)
	}
	return out
}

// setPath sets m[path[0]][path[1]]... = val, replacing any non-map value on the way.
func setPath(m map[string]any, path []string, val any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = val
}

// splitHelmKey splits a dotted Helm key into its parts; "\." is a literal dot inside a part.
// ok is false when a part is empty.
func splitHelmKey(k string) ([]string, bool) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(k); i++ {
		switch {
		case k[i] == '\\' && i+1 < len(k) && k[i+1] == '.':
			cur.WriteByte('.')
			i++
		case k[i] == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(k[i])
		}
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		if p == "" {
			return nil, false
		}
	}
	return parts, true
}

// ExpectedConfig returns the cilium-config keys and values the agent verifies after applying
// values: one entry per set typed field that has a ConfigMap key. Extra keys are not verified.
// The chart may leave a key out when the value is its default; see ConfigDefaults.
func ExpectedConfig(v *ebbflowv1.CiliumValues) map[string]string {
	out := map[string]string{}
	for _, f := range valueFields {
		if f.config == "" {
			continue
		}
		val, ok := fieldValue(v, f)
		if !ok {
			continue
		}
		switch x := val.(type) {
		case bool:
			out[f.config] = strconv.FormatBool(x)
		case int:
			out[f.config] = strconv.Itoa(x)
		case float64:
			out[f.config] = strconv.FormatFloat(x, 'g', -1, 64)
		case string:
			out[f.config] = x
		}
	}
	return out
}

// configDefaults are the chart defaults of the cilium-config keys ExpectedConfig can return.
var configDefaults = map[string]string{
	"kube-proxy-replacement":              "false",
	"routing-mode":                        "tunnel",
	"tunnel-protocol":                     "vxlan",
	"auto-direct-node-routes":             "false",
	"ipv4-native-routing-cidr":            "",
	"enable-bpf-masquerade":               "false",
	"enable-host-legacy-routing":          "false",
	"datapath-mode":                       "veth",
	"bpf-map-dynamic-size-ratio":          "0.0025",
	"enable-ipv4-big-tcp":                 "false",
	"enable-ipv6-big-tcp":                 "false",
	"install-no-conntrack-iptables-rules": "false",
	"enable-bandwidth-manager":            "false",
	"enable-bbr":                          "false",
	"bpf-lb-algorithm":                    "random",
	"bpf-lb-mode":                         "snat",
	"bpf-lb-acceleration":                 "disabled",
	"bpf-lb-dsr-dispatch":                 "opt",
	"bpf-lb-maglev-table-size":            "16381",
	"bpf-lb-maglev-hash-seed":             "",
	"enable-hubble":                       "true",
	"enable-l7-proxy":                     "true",
	"bpf-lb-sock":                         "false",
	"mtu":                                 "0",
}

// ConfigDefaults returns the chart's default for each cilium-config key ExpectedConfig can
// return, so a verifier can accept a key the ConfigMap omits when the expected value is the
// default. A new map on every call.
func ConfigDefaults() map[string]string {
	out := make(map[string]string, len(configDefaults))
	for k, v := range configDefaults {
		out[k] = v
	}
	return out
}

// ParkedDaemonSets returns the DaemonSets the kpr phase parks: the listed ones (namespace
// defaulting to kube-system), or by default kube-system/kube-proxy plus kube-system/aws-node on
// platform eks. A profile without a kpr phase parks nothing.
func ParkedDaemonSets(spec *ebbflowv1.ProfileSpec) []*ebbflowv1.DaemonSetRef {
	if spec.GetKpr() == nil {
		return nil
	}
	var out []*ebbflowv1.DaemonSetRef
	for _, d := range spec.GetKpr().GetParkDaemonSets() {
		ns := d.GetNamespace()
		if ns == "" {
			ns = DefaultNamespace
		}
		out = append(out, &ebbflowv1.DaemonSetRef{Namespace: ns, Name: d.GetName()})
	}
	if len(out) > 0 {
		return out
	}
	out = append(out, &ebbflowv1.DaemonSetRef{Namespace: "kube-system", Name: "kube-proxy"})
	if platform(spec) == "eks" {
		out = append(out, &ebbflowv1.DaemonSetRef{Namespace: "kube-system", Name: "aws-node"})
	}
	return out
}

// Defaults fills the chart's name, release name and namespace and the kpr mode when they are
// empty. It leaves everything else alone; park defaults come from ParkedDaemonSets.
func Defaults(spec *ebbflowv1.ProfileSpec) {
	if spec == nil {
		return
	}
	if spec.Chart == nil {
		spec.Chart = &ebbflowv1.ChartRef{}
	}
	if spec.Chart.Name == "" {
		spec.Chart.Name = DefaultChartName
	}
	if spec.Chart.ReleaseName == "" {
		spec.Chart.ReleaseName = DefaultReleaseName
	}
	if spec.Chart.Namespace == "" {
		spec.Chart.Namespace = DefaultNamespace
	}
	if spec.Kpr != nil && spec.Kpr.Mode == ebbflowv1.KprMode_KPR_MODE_UNSPECIFIED {
		spec.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_CLUSTER_WIDE
	}
}

// platform is the spec's platform, lower-cased.
func platform(spec *ebbflowv1.ProfileSpec) string {
	return strings.ToLower(spec.GetPlatform())
}

// managedPlatforms are the managed clouds whose fabric or CNI setup limits some features.
var managedPlatforms = map[string]bool{"eks": true, "gke": true, "aks": true}
