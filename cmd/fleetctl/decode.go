package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	goyaml "go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// A rollout file is read as a profile file is: the same YAML parser (profile.DecodeYAML's),
// strict about unknown and repeated keys (with the closest field name), every error a
// *profile.FieldError naming the field path, which readManifests turns into the line and column
// of the user's file. On top of protojson's forms it takes durations as Go writes them (10m,
// 1h30m, 0.05s) and enum values in their short spelling (rollbackFailedClusters, haltOnly,
// http, kpr) as well as the proto's (FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS).

var rolloutSpecDesc = (&ebbflowv1.RolloutSpec{}).ProtoReflect().Descriptor()

func fieldErr(field, format string, args ...any) *profile.FieldError {
	return &profile.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// decodeRolloutDoc reads a rollout document:
//
//	apiVersion: ebbflow.io/v1
//	kind: Rollout
//	metadata: {name: tune-eu}   # the rollout's id
//	spec: {...}                 # RolloutSpec with protojson field names
func decodeRolloutDoc(b []byte) (string, *ebbflowv1.RolloutSpec, error) {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return "", nil, fieldErr(profile.FieldDocument, "not valid YAML: %s",
			strings.TrimPrefix(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "), "yaml: "))
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return "", nil, fieldErr(profile.FieldDocument, "not readable: %v", err)
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return "", nil, fieldErr(profile.FieldDocument, "want a mapping with apiVersion, kind, metadata and spec, got %s", describeValue(doc))
	}
	topKeys := []string{"apiVersion", "kind", "metadata", "spec"}
	for _, k := range sortedKeys(top) {
		if !slices.Contains(topKeys, k) {
			return "", nil, fieldErr(pathKey("", k), "unknown field%s; a rollout has apiVersion, kind, metadata and spec", closest(k, topKeys))
		}
	}
	if s, _ := top["apiVersion"].(string); s != profile.APIVersion {
		return "", nil, fieldErr("apiVersion", "must be %q, got %s", profile.APIVersion, describeValue(top["apiVersion"]))
	}
	var name string
	if md := top["metadata"]; md != nil {
		m, ok := md.(map[string]any)
		if !ok {
			return "", nil, fieldErr("metadata", "want a mapping, got %s", describeValue(md))
		}
		for _, k := range sortedKeys(m) {
			if k != "name" {
				return "", nil, fieldErr(pathKey("metadata", k), "unknown field%s; a rollout's metadata has its name (the rollout id)", closest(k, []string{"name"}))
			}
		}
		if m["name"] != nil {
			if name, ok = m["name"].(string); !ok {
				return "", nil, fieldErr("metadata.name", "want a string, got %s", describeValue(m["name"]))
			}
		}
	}
	spec := &ebbflowv1.RolloutSpec{}
	if top["spec"] == nil {
		return "", nil, fieldErr("spec", "required")
	}
	fixed, err := normalizeMessage(top["spec"], rolloutSpecDesc, "spec")
	if err != nil {
		return "", nil, err
	}
	js, err := json.Marshal(fixed)
	if err != nil {
		return "", nil, fieldErr("spec", "%v", err)
	}
	if err := protojson.Unmarshal(js, spec); err != nil {
		return "", nil, fieldErr("spec", "%s", strings.TrimPrefix(err.Error(), "proto: "))
	}
	return name, spec, nil
}

// normalizeMessage checks a decoded JSON object against a message, naming an unknown or
// wrongly typed field by its path, and rewrites durations and enum spellings to protojson's.
func normalizeMessage(v any, md protoreflect.MessageDescriptor, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch md.FullName() {
	case "google.protobuf.Duration":
		return normalizeDuration(v, path)
	case "google.protobuf.Value", "google.protobuf.Timestamp":
		return v, nil
	case "google.protobuf.Struct":
		if _, ok := v.(map[string]any); !ok {
			return nil, fieldErr(path, "want a mapping, got %s", describeValue(v))
		}
		return v, nil
	case "google.protobuf.ListValue":
		if _, ok := v.([]any); !ok {
			return nil, fieldErr(path, "want a list, got %s", describeValue(v))
		}
		return v, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fieldErr(path, "want a mapping, got %s", describeValue(v))
	}
	seen := map[protoreflect.FieldNumber]string{}
	oneofs := map[protoreflect.FullName]string{}
	for _, k := range sortedKeys(m) {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k))
		}
		if fd == nil {
			return nil, fieldErr(pathKey(path, k), "unknown field%s", closest(k, fieldNames(md)))
		}
		if other, dup := seen[fd.Number()]; dup {
			return nil, fieldErr(pathKey(path, fd.JSONName()), "set twice, as %q and %q", other, k)
		}
		seen[fd.Number()] = k
		if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() && m[k] != nil {
			if other, dup := oneofs[o.FullName()]; dup {
				return nil, fieldErr(pathKey(path, k), "give either %s or %s, not both", other, k)
			}
			oneofs[o.FullName()] = k
		}
		out, err := normalizeField(m[k], fd, pathKey(path, fd.JSONName()))
		if err != nil {
			return nil, err
		}
		m[k] = out
	}
	return m, nil
}

func normalizeField(v any, fd protoreflect.FieldDescriptor, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch {
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			return nil, fieldErr(path, "want a list, got %s", describeValue(v))
		}
		for i, e := range list {
			if e == nil {
				return nil, fieldErr(indexPath(path, i), "a list entry may not be empty")
			}
			out, err := normalizeSingle(e, fd, indexPath(path, i))
			if err != nil {
				return nil, err
			}
			list[i] = out
		}
		return list, nil
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fieldErr(path, "want a mapping, got %s", describeValue(v))
		}
		for _, k := range sortedKeys(m) {
			out, err := normalizeSingle(m[k], fd.MapValue(), pathKey(path, k))
			if err != nil {
				return nil, err
			}
			m[k] = out
		}
		return m, nil
	}
	return normalizeSingle(v, fd, path)
}

func normalizeSingle(v any, fd protoreflect.FieldDescriptor, path string) (any, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return normalizeMessage(v, fd.Message(), path)
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return nil, fieldErr(path, "want true or false, got %s", describeValue(v))
		}
		return v, nil
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return nil, fieldErr(path, "want a string, got %s (quote it)", describeValue(v))
		}
		return v, nil
	case protoreflect.EnumKind:
		return normalizeEnum(v, fd.Enum(), path)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return normalizeFloat(v, path)
	}
	return normalizeInt(v, fd.Kind(), path)
}

// normalizeDuration takes a Go duration (10m, 1h30m, 0.05s, 600s) and writes protojson's
// seconds.
func normalizeDuration(v any, path string) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fieldErr(path, "want a duration like 90s, 10m or 1h30m, got %s", describeValue(v))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fieldErr(path, "want a duration like 90s, 10m or 1h30m, got %q", s)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s", nil
}

// enumPrefix is the common prefix of an enum's value names: FAILURE_POLICY_ of
// FAILURE_POLICY_HALT_ONLY.
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	if ed.Values().Len() == 0 {
		return ""
	}
	name := string(ed.Values().Get(0).Name())
	if p, ok := strings.CutSuffix(name, "UNSPECIFIED"); ok {
		return p
	}
	return ""
}

// enumShort is the short spelling of an enum value, in camelCase: rollbackFailedClusters.
func enumShort(ed protoreflect.EnumDescriptor, ev protoreflect.EnumValueDescriptor) string {
	parts := strings.Split(strings.ToLower(strings.TrimPrefix(string(ev.Name()), enumPrefix(ed))), "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// enumByName resolves a proto value name, or a short spelling in any case with or without
// '-' and '_' (rollbackFailedClusters, rollback-failed-clusters, ROLLBACK_FAILED_CLUSTERS).
func enumByName(ed protoreflect.EnumDescriptor, s string) protoreflect.EnumValueDescriptor {
	if ev := ed.Values().ByName(protoreflect.Name(s)); ev != nil {
		return ev
	}
	squash := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	want := squash(s)
	for i := range ed.Values().Len() {
		ev := ed.Values().Get(i)
		if ev.Number() != 0 && squash(strings.TrimPrefix(string(ev.Name()), enumPrefix(ed))) == want {
			return ev
		}
	}
	return nil
}

func enumChoices(ed protoreflect.EnumDescriptor) []string {
	var out []string
	for i := range ed.Values().Len() {
		if ev := ed.Values().Get(i); ev.Number() != 0 {
			out = append(out, enumShort(ed, ev))
		}
	}
	return out
}

func normalizeEnum(v any, ed protoreflect.EnumDescriptor, path string) (any, error) {
	choices := enumChoices(ed)
	if s, ok := v.(string); ok {
		if ev := enumByName(ed, s); ev != nil {
			return string(ev.Name()), nil
		}
		return nil, fieldErr(path, "unknown value %q%s; want one of %s", s, closest(s, choices), strings.Join(choices, ", "))
	}
	return nil, fieldErr(path, "want one of %s, got %s", strings.Join(choices, ", "), describeValue(v))
}

func normalizeFloat(v any, path string) (any, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		if x == "NaN" || x == "Infinity" || x == "-Infinity" {
			return x, nil
		}
		s = x
	default:
		return nil, fieldErr(path, "want a number, got %s", describeValue(v))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, fieldErr(path, "want a number, got %s", describeValue(v))
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

func normalizeInt(v any, kind protoreflect.Kind, path string) (any, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return nil, fieldErr(path, "want a whole number, got %s", describeValue(v))
	}
	bits, unsigned := 64, false
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		bits = 32
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		bits, unsigned = 32, true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		unsigned = true
	}
	if unsigned {
		if n, err := strconv.ParseUint(s, 10, bits); err == nil {
			return json.Number(strconv.FormatUint(n, 10)), nil
		}
	} else if n, err := strconv.ParseInt(s, 10, bits); err == nil {
		return json.Number(strconv.FormatInt(n, 10)), nil
	}
	if unsigned {
		return nil, fieldErr(path, "want a whole number of at least 0 that fits %d bits, got %s", bits, describeValue(v))
	}
	return nil, fieldErr(path, "want a whole number that fits %d bits, got %s", bits, describeValue(v))
}

func fieldNames(md protoreflect.MessageDescriptor) []string {
	out := make([]string, md.Fields().Len())
	for i := range out {
		out[i] = md.Fields().Get(i).JSONName()
	}
	return out
}

// closest proposes the name a misspelt one probably meant: " (did you mean sortLabel?)".
func closest(k string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(k), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(x)
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + x.String()
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pathKey and indexPath write field paths as profile.FieldError does: a.b, a["x.y"], a[0].
func pathKey(base, key string) string {
	plain := key != "" && strings.IndexFunc(key, func(r rune) bool {
		return !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 && (key[0] < '0' || key[0] > '9') && key[0] != '-'
	switch {
	case base == "" && plain:
		return key
	case plain:
		return base + "." + key
	}
	return base + "[" + strconv.Quote(key) + "]"
}

func indexPath(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }

// encodeRolloutYAML writes a rollout in the file format decodeRolloutDoc reads: fields in proto
// order, enums in their short spelling, durations as Go writes them (10m, 1h30m).
func encodeRolloutYAML(name string, spec *ebbflowv1.RolloutSpec) ([]byte, error) {
	js, err := protojson.Marshal(spec)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	tree := orderMessage(generic, rolloutSpecDesc)
	if tree == nil {
		tree = goyaml.MapSlice{}
	}
	return goyaml.Marshal(goyaml.MapSlice{
		{Key: "apiVersion", Value: profile.APIVersion},
		{Key: "kind", Value: kindRollout},
		{Key: "metadata", Value: goyaml.MapSlice{{Key: "name", Value: name}}},
		{Key: "spec", Value: tree},
	})
}

func orderMessage(v any, md protoreflect.MessageDescriptor) any {
	if md.FullName() == "google.protobuf.Duration" {
		if s, ok := v.(string); ok {
			if d, err := time.ParseDuration(s); err == nil {
				return shortDuration(d)
			}
		}
		return v
	}
	m, ok := v.(map[string]any)
	if !ok || strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return plainYAML(v)
	}
	out := goyaml.MapSlice{}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		val, ok := m[fd.JSONName()]
		if !ok {
			continue
		}
		var o any
		switch {
		case fd.IsList():
			list, _ := val.([]any)
			items := make([]any, len(list))
			for j, e := range list {
				items[j] = orderSingle(e, fd)
			}
			o = items
		case fd.IsMap():
			mm, _ := val.(map[string]any)
			items := goyaml.MapSlice{}
			for _, k := range sortedKeys(mm) {
				items = append(items, goyaml.MapItem{Key: k, Value: orderSingle(mm[k], fd.MapValue())})
			}
			o = items
		default:
			o = orderSingle(val, fd)
		}
		out = append(out, goyaml.MapItem{Key: fd.JSONName(), Value: o})
	}
	return out
}

func orderSingle(v any, fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return orderMessage(v, fd.Message())
	case protoreflect.EnumKind:
		if s, ok := v.(string); ok {
			if ev := fd.Enum().Values().ByName(protoreflect.Name(s)); ev != nil && ev.Number() != 0 {
				return enumShort(fd.Enum(), ev)
			}
		}
	}
	return plainYAML(v)
}

func plainYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := goyaml.MapSlice{}
		for _, k := range sortedKeys(x) {
			out = append(out, goyaml.MapItem{Key: k, Value: plainYAML(x[k])})
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainYAML(e)
		}
		return out
	case json.Number:
		if n, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return n
		}
		if f, err := strconv.ParseFloat(x.String(), 64); err == nil {
			return f
		}
		return x.String()
	}
	return v
}

// shortDuration writes a duration as a person would: 10m, 1h30m, 50ms, 0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
