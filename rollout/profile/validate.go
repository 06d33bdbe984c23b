package profile

// This file is over 500 lines on purpose: Validate's walk over every field of a profile and
// Cilium's value formats, in the order Validate runs them (the cross-field rules are in rules.go).

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/Masterminds/semver/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/apimachinery/pkg/util/validation"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Limits on a profile's size.
const (
	MaxPolicies       = 64
	MaxNamespaces     = 64
	MaxParked         = 16
	MaxExtraKeys      = 128
	MaxAllowTurnOff   = 64
	MaxStringBytes    = 4 << 10
	maxHelmKeyBytes   = 256
	maxStructDepth    = 32
	maxReleaseNameLen = 53
)

// MaglevTableSizes are the table sizes Cilium accepts (primes).
var MaglevTableSizes = []int32{251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071}

// maglevSeedBytes is the decoded length of maglev.hashSeed that Cilium's agent insists on
// ("decoded hash seed is N bytes (not 12 bytes)"); the docs make one with head -c12 | base64.
const maglevSeedBytes = 12

// Result is the outcome of Validate.
type Result struct {
	// Errors make the profile unusable.
	Errors []*ebbflowv1.ValidationIssue
	// Warnings are worth reading but do not stop the profile.
	Warnings []*ebbflowv1.ValidationIssue
	// Unvalidated lists the extra Helm keys passed through as they are (sorted, deduplicated).
	Unvalidated []string
}

// Err is nil when there are no errors, else a *ValidationError listing every error.
func (r Result) Err() error {
	if len(r.Errors) == 0 {
		return nil
	}
	return &ValidationError{What: "profile", Issues: r.Errors}
}

// ValidationError is a rejected spec with every issue found.
type ValidationError struct {
	// What was validated, e.g. "profile" or "rollout spec".
	What   string
	Issues []*ebbflowv1.ValidationIssue
}

// Error lists the issues as "field: message (rule)", separated by "; ".
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid %s: ", e.What)
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s (%s)", is.GetField(), is.GetMessage(), is.GetRule())
	}
	return b.String()
}

// Issues gathers validation issues in the order they are found, each naming its field (JSON
// names, e.g. spec.values.l7) and a stable rule id. Profiles, rollout specs and the API's
// requests all collect their issues with it.
type Issues []*ebbflowv1.ValidationIssue

// Add records one issue; format and args make its message.
func (v *Issues) Add(field, rule, format string, args ...any) {
	*v = append(*v, &ebbflowv1.ValidationIssue{Field: field, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

// Validate checks a profile's name and spec: types and enums, sizes, Cilium's value formats, and
// the cross-field rules on the cumulative values at each phase (see rules.go).
func Validate(name string, spec *ebbflowv1.ProfileSpec) Result {
	var errs, warns Issues
	dnsLabel(&errs, "name", name, true)
	if spec == nil {
		errs.Add("spec", "required", "must be set")
		return Result{Errors: errs}
	}
	walkMessage(&errs, spec.ProtoReflect(), "spec", 0)
	if spec.GetPlatform() != "" {
		dnsLabel(&errs, "spec.platform", strings.ToLower(spec.GetPlatform()), false)
	}
	checkChart(&errs, &warns, spec.GetChart())
	for _, p := range phaseOrder {
		checkValues(&errs, valuesPath(p), PhaseValues(spec, p))
	}
	checkL7(&errs, spec)
	checkKpr(&errs, spec)
	checkRules(&errs, spec)
	checkWarnings(&warns, spec)
	return Result{Errors: errs, Warnings: warns, Unvalidated: unvalidatedKeys(spec)}
}

// dnsLabel checks a DNS-1123 label (lower case, <= 63).
func dnsLabel(c *Issues, field, s string, required bool) {
	if s == "" {
		if required {
			c.Add(field, "required", "must be set")
		}
		return
	}
	if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
		c.Add(field, "dns-label", "%q is not a DNS label: %s", clip(s), strings.Join(errs, "; "))
	}
}

// dnsSubdomain checks a DNS-1123 subdomain (object names).
func dnsSubdomain(c *Issues, field, s string) {
	if s == "" {
		c.Add(field, "required", "must be set")
		return
	}
	if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
		c.Add(field, "dns-subdomain", "%q is not a valid object name: %s", clip(s), strings.Join(errs, "; "))
	}
}

// clip shortens a value quoted in a message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:61] + "..."
}

// pathKey appends a map key to a field path: a.key, or a["odd key"].
func pathKey(base, key string) string {
	switch {
	case base == "" && plainKey.MatchString(key):
		return key
	case plainKey.MatchString(key):
		return base + "." + key
	}
	return base + "[" + strconv.Quote(key) + "]"
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func index(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }

// walkMessage checks every set field of m, in field order: strings at most MaxStringBytes, enum
// numbers defined, free-form structures not nested too deep.
func walkMessage(c *Issues, m protoreflect.Message, path string, depth int) {
	if depth > maxStructDepth {
		c.Add(path, "max-depth", "nested deeper than %d levels", maxStructDepth)
		return
	}
	switch x := m.Interface().(type) {
	case *structpb.Struct:
		for _, k := range sortedKeys(x.GetFields()) {
			if len(k) > MaxStringBytes {
				c.Add(path, "max-length", "a key is longer than %d bytes", MaxStringBytes)
				continue
			}
			walkValue(c, x.GetFields()[k], pathKey(path, k), depth+1)
		}
		return
	case *structpb.Value:
		walkValue(c, x, path, depth)
		return
	case *structpb.ListValue:
		for i, v := range x.GetValues() {
			walkValue(c, v, index(path, i), depth+1)
		}
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		p := path + "." + fd.JSONName()
		v := m.Get(fd)
		switch {
		case fd.IsList():
			for j := 0; j < v.List().Len(); j++ {
				walkScalar(c, fd, v.List().Get(j), index(p, j), depth)
			}
		case fd.IsMap():
			var keys []string
			v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k.String())
				return true
			})
			slices.Sort(keys)
			for _, k := range keys {
				if len(k) > MaxStringBytes {
					c.Add(p, "max-length", "a key is longer than %d bytes", MaxStringBytes)
					continue
				}
				walkScalar(c, fd.MapValue(), v.Map().Get(protoreflect.ValueOfString(k).MapKey()), pathKey(p, k), depth)
			}
		default:
			walkScalar(c, fd, v, p, depth)
		}
	}
}

func walkScalar(c *Issues, fd protoreflect.FieldDescriptor, v protoreflect.Value, path string, depth int) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if len(v.String()) > MaxStringBytes {
			c.Add(path, "max-length", "at most %d bytes, got %d", MaxStringBytes, len(v.String()))
		}
	case protoreflect.EnumKind:
		if fd.Enum().Values().ByNumber(v.Enum()) == nil {
			c.Add(path, "enum", "unknown value %d; want one of %s", v.Enum(), enumChoices(fd.Enum()))
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		walkMessage(c, v.Message(), path, depth+1)
	}
}

func walkValue(c *Issues, v *structpb.Value, path string, depth int) {
	if depth > maxStructDepth {
		c.Add(path, "max-depth", "nested deeper than %d levels", maxStructDepth)
		return
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		if len(k.StringValue) > MaxStringBytes {
			c.Add(path, "max-length", "at most %d bytes, got %d", MaxStringBytes, len(k.StringValue))
		}
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			c.Add(path, "range", "must be a finite number")
		}
	case *structpb.Value_StructValue:
		walkMessage(c, k.StructValue.ProtoReflect(), path, depth+1)
	case *structpb.Value_ListValue:
		for i, e := range k.ListValue.GetValues() {
			walkValue(c, e, index(path, i), depth+1)
		}
	}
}

// checkChart checks the chart reference.
func checkChart(errs, warns *Issues, ch *ebbflowv1.ChartRef) {
	repo := ch.GetRepository()
	switch {
	case repo == "":
		errs.Add("spec.chart.repository", "required", "must be set: an https:// repository, an oci:// reference or a local path starting with / or ./")
	case !validRepository(repo):
		errs.Add("spec.chart.repository", "chart-repository", "%q must be an https:// URL with a host, an oci:// reference or a local path starting with / or ./", clip(repo))
	}
	if v := ch.GetVersion(); v == "" {
		warns.Add("spec.chart.version", "chart-version-unpinned", "no version constraint: every cluster gets whatever chart version is newest when its phase runs")
	} else if _, err := semver.NewConstraint(v); err != nil {
		errs.Add("spec.chart.version", "semver-constraint", "%q is not a semver constraint: %v", clip(v), err)
	}
	if ch.GetName() != "" {
		dnsLabel(errs, "spec.chart.name", ch.GetName(), false)
	}
	if r := ch.GetReleaseName(); r != "" {
		if len(r) > maxReleaseNameLen || len(validation.IsDNS1123Subdomain(r)) > 0 {
			errs.Add("spec.chart.releaseName", "release-name", "%q is not a Helm release name (lower-case DNS name, at most %d characters)", clip(r), maxReleaseNameLen)
		}
	}
	if ch.GetNamespace() != "" {
		dnsLabel(errs, "spec.chart.namespace", ch.GetNamespace(), false)
	}
}

func validRepository(repo string) bool {
	for _, r := range repo {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	switch {
	case strings.HasPrefix(repo, "https://"):
		u, err := url.Parse(repo)
		return err == nil && u.Host != "" && u.Hostname() != ""
	case strings.HasPrefix(repo, "oci://"):
		rest := strings.TrimPrefix(repo, "oci://")
		host, _, _ := strings.Cut(rest, "/")
		return host != ""
	case strings.HasPrefix(repo, "/"), strings.HasPrefix(repo, "./"):
		return true
	}
	return false
}

// checkValues checks one phase's values on their own: ranges and formats.
func checkValues(c *Issues, path string, v *ebbflowv1.CiliumValues) {
	if v == nil {
		return
	}
	if v.K8SServicePort != nil && (v.GetK8SServicePort() < 1 || v.GetK8SServicePort() > 65535) {
		c.Add(path+".k8sServicePort", "range", "must be a TCP port 1..65535, got %d", v.GetK8SServicePort())
	}
	if h := v.GetK8SServiceHost(); h != "" {
		switch {
		case strings.Contains(h, "://"):
			c.Add(path+".k8sServiceHost", "host", "%q must be a host name or IP address without a scheme", clip(h))
		case net.ParseIP(h) == nil && len(validation.IsDNS1123Subdomain(strings.ToLower(h))) > 0:
			c.Add(path+".k8sServiceHost", "host", "%q is not a host name or IP address", clip(h))
		}
	}
	if s := v.GetIpv4NativeRoutingCidr(); s != "" {
		if p, err := netip.ParsePrefix(s); err != nil || !p.Addr().Is4() {
			c.Add(path+".ipv4NativeRoutingCidr", "cidr", "%q is not an IPv4 CIDR", clip(s))
		}
	}
	if v.BpfMapDynamicSizeRatio != nil {
		if r := v.GetBpfMapDynamicSizeRatio(); !(r >= 0 && r <= 1) {
			c.Add(path+".bpfMapDynamicSizeRatio", "range", "must be between 0 and 1, got %v", r)
		}
	}
	if v.MaglevTableSize != nil && !slices.Contains(MaglevTableSizes, v.GetMaglevTableSize()) {
		c.Add(path+".maglevTableSize", "maglev-table-size", "%d is not a Maglev table size; want one of %s", v.GetMaglevTableSize(), joinInts(MaglevTableSizes))
	}
	if s := v.GetMaglevHashSeed(); s != "" {
		if d, err := base64.StdEncoding.DecodeString(s); err != nil {
			c.Add(path+".maglevHashSeed", "maglev-hash-seed", "not standard base64: %v", err)
		} else if len(d) != maglevSeedBytes {
			c.Add(path+".maglevHashSeed", "maglev-hash-seed", "decodes to %d bytes; Cilium wants %d (head -c12 /dev/urandom | base64)", len(d), maglevSeedBytes)
		}
	}
	if v.Mtu != nil && v.GetMtu() != 0 && (v.GetMtu() < 576 || v.GetMtu() > 65535) {
		c.Add(path+".mtu", "range", "must be 0 (auto) or 576..65535, got %d", v.GetMtu())
	}
	checkExtra(c, path, v)
	checkAllowTurnOff(c, path, v)
}

// typedHelmParts are the typed fields' Helm keys split into parts.
var typedHelmParts = func() [][]string {
	var out [][]string
	for _, f := range valueFields {
		p, _ := splitHelmKey(f.helm)
		out = append(out, p)
	}
	return out
}()

var helmPart = regexp.MustCompile(`^[A-Za-z0-9_./-]+$`)

// validHelmKey reports whether k is a dotted Helm key ("\." escapes a dot).
func validHelmKey(k string) ([]string, bool) {
	if len(k) > maxHelmKeyBytes {
		return nil, false
	}
	parts, ok := splitHelmKey(k)
	if !ok {
		return nil, false
	}
	for _, p := range parts {
		if !helmPart.MatchString(p) {
			return nil, false
		}
	}
	return parts, true
}

// typedConflict returns the typed Helm key that extra key parts would set or cover, if any.
func typedConflict(parts []string) (string, bool) {
	for i, tp := range typedHelmParts {
		n := min(len(tp), len(parts))
		if slices.Equal(tp[:n], parts[:n]) {
			return valueFields[i].helm, true
		}
	}
	return "", false
}

func checkExtra(c *Issues, path string, v *ebbflowv1.CiliumValues) {
	extra := v.GetExtra()
	if len(extra) > MaxExtraKeys {
		c.Add(path+".extra", "max-items", "at most %d keys, got %d", MaxExtraKeys, len(extra))
	}
	for _, k := range sortedKeys(extra) {
		field := pathKey(path+".extra", k)
		parts, ok := validHelmKey(k)
		if !ok {
			c.Add(field, "extra-key", "%q is not a dotted Helm key (letters, digits, _ - / and dots; at most %d bytes)", clip(k), maxHelmKeyBytes)
			continue
		}
		if typed, ok := typedConflict(parts); ok {
			c.Add(field, "extra-typed-key", "%q overlaps the typed value %s; set it with the typed field so it is validated", clip(k), typed)
		}
	}
}

func checkAllowTurnOff(c *Issues, path string, v *ebbflowv1.CiliumValues) {
	list := v.GetAllowTurnOff()
	if len(list) > MaxAllowTurnOff {
		c.Add(path+".allowTurnOff", "max-items", "at most %d keys, got %d", MaxAllowTurnOff, len(list))
	}
	seen := map[string]bool{}
	for i, k := range list {
		field := index(path+".allowTurnOff", i)
		key := normalizeTurnOffKey(k)
		if _, ok := validHelmKey(key); !ok {
			c.Add(field, "allow-turn-off-key", "%q is not a Helm key such as bpf.masquerade", clip(k))
			continue
		}
		if seen[key] {
			c.Add(field, "duplicate", "%q is listed twice", clip(k))
		}
		seen[key] = true
	}
}

// normalizeTurnOffKey maps a typed field's JSON name (bpfMasquerade) to its Helm key.
func normalizeTurnOffKey(k string) string {
	if h, ok := helmKeyByJSON[k]; ok {
		return h
	}
	return k
}

// checkL7 checks the l7 phase's policies and namespaces.
func checkL7(c *Issues, spec *ebbflowv1.ProfileSpec) {
	l7 := spec.GetL7()
	if l7 == nil {
		return
	}
	if n := len(l7.GetPolicies()); n > MaxPolicies {
		c.Add("spec.l7.policies", "max-items", "at most %d policies, got %d", MaxPolicies, n)
	}
	if n := len(l7.GetNamespaces()); n > MaxNamespaces {
		c.Add("spec.l7.namespaces", "max-items", "at most %d namespaces, got %d", MaxNamespaces, n)
	}
	nsSet := map[string]bool{}
	for i, ns := range l7.GetNamespaces() {
		field := index("spec.l7.namespaces", i)
		dnsLabel(c, field, ns, true)
		if nsSet[ns] {
			c.Add(field, "duplicate", "namespace %q is listed twice", clip(ns))
		}
		nsSet[ns] = true
	}
	seen := map[string]bool{}
	for i, pol := range l7.GetPolicies() {
		checkPolicy(c, index("spec.l7.policies", i), pol, l7.GetNamespaces(), nsSet, seen)
	}
}

const (
	kindCNP  = "CiliumNetworkPolicy"
	kindCCNP = "CiliumClusterwideNetworkPolicy"
)

func checkPolicy(c *Issues, path string, pol *structpb.Struct, namespaces []string, nsSet, seen map[string]bool) {
	f := pol.GetFields()
	apiVersion := f["apiVersion"].GetStringValue()
	kind := f["kind"].GetStringValue()
	if apiVersion != "cilium.io/v2" {
		c.Add(path+".apiVersion", "l7-policy-kind", "must be cilium.io/v2, got %q", clip(apiVersion))
	}
	if kind != kindCNP && kind != kindCCNP {
		c.Add(path+".kind", "l7-policy-kind", "must be %s or %s, got %q", kindCNP, kindCCNP, clip(kind))
	}
	md := f["metadata"].GetStructValue().GetFields()
	name := md["name"].GetStringValue()
	dnsSubdomain(c, path+".metadata.name", name)
	ns := md["namespace"].GetStringValue()
	switch {
	case kind == kindCCNP && ns != "":
		c.Add(path+".metadata.namespace", "l7-policy-namespace", "a %s is cluster-wide and takes no namespace", kindCCNP)
	case kind == kindCNP && ns == "" && len(namespaces) == 0:
		c.Add(path+".metadata.namespace", "l7-policy-namespace", "a %s needs metadata.namespace or the phase's namespaces to be applied in", kindCNP)
	case kind == kindCNP && ns != "" && len(namespaces) > 0 && !nsSet[ns]:
		c.Add(path+".metadata.namespace", "l7-policy-namespace", "namespace %q is not among spec.l7.namespaces", clip(ns))
	}
	if f["spec"].GetStructValue() == nil && f["specs"].GetListValue() == nil {
		c.Add(path+".spec", "required", "a policy needs spec (or specs)")
	}
	key := kind + "/" + ns + "/" + name
	if name != "" && seen[key] {
		c.Add(path+".metadata.name", "duplicate", "%s %q is listed twice", kind, clip(name))
	}
	seen[key] = true
}

// checkKpr checks the kpr phase's mode and the DaemonSets it parks.
func checkKpr(c *Issues, spec *ebbflowv1.ProfileSpec) {
	kpr := spec.GetKpr()
	if kpr == nil {
		return
	}
	checkKprBatches(c, kpr)
	if n := len(kpr.GetParkDaemonSets()); n > MaxParked {
		c.Add("spec.kpr.parkDaemonSets", "max-items", "at most %d DaemonSets, got %d", MaxParked, n)
	}
	chartNS := cmp.Or(spec.GetChart().GetNamespace(), DefaultNamespace)
	release := cmp.Or(spec.GetChart().GetReleaseName(), DefaultReleaseName)
	seen := map[string]bool{}
	for i, d := range kpr.GetParkDaemonSets() {
		path := index("spec.kpr.parkDaemonSets", i)
		dnsLabel(c, path+".namespace", d.GetNamespace(), false)
		dnsSubdomain(c, path+".name", d.GetName())
		ns := cmp.Or(d.GetNamespace(), DefaultNamespace)
		if ns == chartNS && (d.GetName() == release || d.GetName() == "cilium") {
			c.Add(path+".name", "park-cilium", "parking %s/%s would stop Cilium itself", ns, d.GetName())
		}
		key := ns + "/" + d.GetName()
		if seen[key] {
			c.Add(path, "duplicate", "%s is listed twice", key)
		}
		seen[key] = true
	}
}

// unvalidatedKeys lists every extra key of every phase, sorted and deduplicated.
func unvalidatedKeys(spec *ebbflowv1.ProfileSpec) []string {
	var out []string
	for _, p := range phaseOrder {
		out = append(out, sortedKeys(PhaseValues(spec, p).GetExtra())...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinInts(xs []int32) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, ", ")
}
