package profile

// This file is over 500 lines on purpose: the profile file format's strict decoder and its
// encoder side by side, so the two stay symmetric (EncodeYAML writes what DecodeYAML reads).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	goyaml "go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// The profile file format.
const (
	APIVersion = "ebbflow.io/v1"
	Kind       = "Profile"
	// MaxDocumentBytes is the largest profile document DecodeYAML reads.
	MaxDocumentBytes = 1 << 20
)

// FieldDocument is the field a FieldError names when the document as a whole is unreadable.
const FieldDocument = "document"

// FieldError is a rejected profile document: the field path at fault and what is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var specDesc = (&ebbflowv1.ProfileSpec{}).ProtoReflect().Descriptor()

// DecodeYAML reads a profile document:
//
//	apiVersion: ebbflow.io/v1
//	kind: Profile
//	metadata: {name: eks-tuned}
//	spec: {...}   # ProfileSpec with protojson field names
//
// Unknown or repeated keys are errors naming the key. Enums take their proto names
// (ROUTING_MODE_NATIVE) or Cilium's spelling (native, best-effort, netkit-l2, node-by-node).
// metadata may carry revision, createTime, updateTime and updatedBy as EncodeYAML writes them;
// they are read-only and ignored. Every error is a *FieldError. The spec is not validated here:
// call Validate.
func DecodeYAML(b []byte) (string, *ebbflowv1.ProfileSpec, error) {
	if len(b) > MaxDocumentBytes {
		return "", nil, fieldErr(FieldDocument, "%d bytes is larger than the limit of %d", len(b), MaxDocumentBytes)
	}
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return "", nil, yamlError(err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return "", nil, fieldErr(FieldDocument, "not readable: %v", err)
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return "", nil, fieldErr(FieldDocument, "must be a mapping with apiVersion, kind, metadata and spec, got %s", describe(doc))
	}
	for _, k := range sortedKeys(top) {
		switch k {
		case "apiVersion", "kind", "metadata", "spec":
		default:
			return "", nil, fieldErr(pathKey("", k), "unknown field; a profile has apiVersion, kind, metadata and spec")
		}
	}
	if s, _ := top["apiVersion"].(string); s != APIVersion {
		return "", nil, fieldErr("apiVersion", "must be %q, got %s", APIVersion, describe(top["apiVersion"]))
	}
	if s, _ := top["kind"].(string); s != Kind {
		return "", nil, fieldErr("kind", "must be %q, got %s", Kind, describe(top["kind"]))
	}
	name, err := decodeMetadata(top["metadata"])
	if err != nil {
		return "", nil, err
	}
	spec := &ebbflowv1.ProfileSpec{}
	if top["spec"] == nil {
		return name, spec, nil
	}
	fixed, err := normalizeMessage(top["spec"], specDesc, "spec")
	if err != nil {
		return "", nil, err
	}
	js, err := json.Marshal(fixed)
	if err != nil {
		return "", nil, fieldErr("spec", "%v", err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, spec); err != nil {
		return "", nil, fieldErr("spec", "%s", strings.TrimPrefix(err.Error(), "proto: "))
	}
	return name, spec, nil
}

// metadataKeys are the keys metadata may have; only name is read.
var metadataKeys = []string{"name", "revision", "createTime", "updateTime", "updatedBy"}

func decodeMetadata(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	md, ok := v.(map[string]any)
	if !ok {
		return "", fieldErr("metadata", "want a mapping, got %s", describe(v))
	}
	for _, k := range sortedKeys(md) {
		if !slices.Contains(metadataKeys, k) {
			return "", fieldErr(pathKey("metadata", k), "unknown field; metadata has name (and read-only revision, createTime, updateTime, updatedBy)")
		}
	}
	if md["name"] == nil {
		return "", nil
	}
	name, ok := md["name"].(string)
	if !ok {
		return "", fieldErr("metadata.name", "want a string, got %s", describe(md["name"]))
	}
	return name, nil
}

var dupKey = regexp.MustCompile(`key "((?:[^"\\]|\\.)*)" already set`)

// yamlError names the repeated key of a duplicate-key error, else the document.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	if m := dupKey.FindStringSubmatch(msg); m != nil {
		key := m[1]
		if u, err := strconv.Unquote(`"` + key + `"`); err == nil {
			key = u
		}
		return fieldErr(pathKey("", key), "repeated key: %s", msg)
	}
	return fieldErr(FieldDocument, "not valid YAML: %s", msg)
}

// describe names a decoded JSON value's type for messages.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(clip(x))
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + clip(x.String())
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// isFreeForm reports whether a message is one of the JSON-any well-known types.
func isFreeForm(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		return true
	}
	return false
}

// normalizeMessage checks a decoded JSON object against a message descriptor, naming any unknown
// or wrongly typed field by its path, and rewrites enum spellings to proto names so protojson
// can read the result.
func normalizeMessage(v any, md protoreflect.MessageDescriptor, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch md.FullName() {
	case "google.protobuf.Value":
		return v, nil
	case "google.protobuf.Struct":
		if _, ok := v.(map[string]any); !ok {
			return nil, fieldErr(path, "want a mapping, got %s", describe(v))
		}
		return v, nil
	case "google.protobuf.ListValue":
		if _, ok := v.([]any); !ok {
			return nil, fieldErr(path, "want a list, got %s", describe(v))
		}
		return v, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fieldErr(path, "want a mapping, got %s", describe(v))
	}
	seen := map[protoreflect.FieldNumber]string{}
	for _, k := range sortedKeys(m) {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k))
		}
		if fd == nil {
			return nil, fieldErr(pathKey(path, k), "unknown field%s", suggest(md, k))
		}
		if other, dup := seen[fd.Number()]; dup {
			return nil, fieldErr(pathKey(path, fd.JSONName()), "set twice, as %q and %q", other, k)
		}
		seen[fd.Number()] = k
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
			return nil, fieldErr(path, "want a list, got %s", describe(v))
		}
		for i, e := range list {
			if e == nil {
				return nil, fieldErr(index(path, i), "a list entry may not be empty")
			}
			out, err := normalizeSingle(e, fd, index(path, i))
			if err != nil {
				return nil, err
			}
			list[i] = out
		}
		return list, nil
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fieldErr(path, "want a mapping, got %s", describe(v))
		}
		for _, k := range sortedKeys(m) {
			if m[k] == nil && !isValueMsg(fd.MapValue()) {
				return nil, fieldErr(pathKey(path, k), "may not be empty")
			}
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

func isValueMsg(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Value"
}

func normalizeSingle(v any, fd protoreflect.FieldDescriptor, path string) (any, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return normalizeMessage(v, fd.Message(), path)
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return nil, fieldErr(path, "want true or false, got %s", describe(v))
		}
		return v, nil
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			return nil, fieldErr(path, "want a string, got %s (quote it)", describe(v))
		}
		return v, nil
	case protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return nil, fieldErr(path, "want base64 text, got %s", describe(v))
		}
		return v, nil
	case protoreflect.EnumKind:
		return normalizeEnum(v, fd.Enum(), path)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return normalizeFloat(v, fd.Kind() == protoreflect.FloatKind, path)
	}
	return normalizeInt(v, fd.Kind(), path)
}

func normalizeEnum(v any, ed protoreflect.EnumDescriptor, path string) (any, error) {
	switch x := v.(type) {
	case string:
		if ev, ok := enumFromShort(ed, x); ok {
			return string(ev.Name()), nil
		}
		return nil, fieldErr(path, "unknown value %q; want one of %s", clip(x), enumChoices(ed))
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 32)
		if err != nil {
			return nil, fieldErr(path, "unknown value %s; want one of %s", clip(x.String()), enumChoices(ed))
		}
		return json.Number(strconv.FormatInt(n, 10)), nil
	}
	return nil, fieldErr(path, "want one of %s, got %s", enumChoices(ed), describe(v))
}

func normalizeFloat(v any, single bool, path string) (any, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		switch x {
		case "NaN", "Infinity", "-Infinity":
			return x, nil
		}
		s = x
	default:
		return nil, fieldErr(path, "want a number, got %s", describe(v))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || (single && math.Abs(f) > math.MaxFloat32) {
		return nil, fieldErr(path, "want a number, got %s", describe(v))
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
		return nil, fieldErr(path, "want a whole number, got %s", describe(v))
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
	// 1e3 or 16381.0 are whole numbers too: write them out first.
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 &&
		strings.ContainsAny(s, ".eE") {
		s = strconv.FormatFloat(f, 'f', 0, 64)
	}
	if unsigned {
		if n, err := strconv.ParseUint(s, 10, bits); err == nil {
			return json.Number(strconv.FormatUint(n, 10)), nil
		}
	} else if n, err := strconv.ParseInt(s, 10, bits); err == nil {
		return json.Number(strconv.FormatInt(n, 10)), nil
	}
	return nil, fieldErr(path, "want a whole number that fits %d bits, got %s", bits, describe(v))
}

// suggest proposes the field a misspelt key probably meant.
func suggest(md protoreflect.MessageDescriptor, k string) string {
	best, bestD := "", 3
	for i := 0; i < md.Fields().Len(); i++ {
		name := md.Fields().Get(i).JSONName()
		if d := editDistance(strings.ToLower(k), strings.ToLower(name)); d < bestD {
			best, bestD = name, d
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
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
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

// EncodeYAML writes a profile in the file format DecodeYAML reads: fields in proto order, enums
// in Cilium's spelling, metadata with the read-only revision and times when set.
func EncodeYAML(p *ebbflowv1.Profile) ([]byte, error) {
	tree, err := specTree(p.GetSpec())
	if err != nil {
		return nil, err
	}
	md := goyaml.MapSlice{{Key: "name", Value: p.GetName()}}
	if p.GetRevision() != 0 {
		md = append(md, goyaml.MapItem{Key: "revision", Value: p.GetRevision()})
	}
	if p.GetCreateTime() != nil {
		md = append(md, goyaml.MapItem{Key: "createTime", Value: p.GetCreateTime().AsTime().UTC().Format(time.RFC3339Nano)})
	}
	if p.GetUpdateTime() != nil {
		md = append(md, goyaml.MapItem{Key: "updateTime", Value: p.GetUpdateTime().AsTime().UTC().Format(time.RFC3339Nano)})
	}
	if p.GetUpdatedBy() != "" {
		md = append(md, goyaml.MapItem{Key: "updatedBy", Value: p.GetUpdatedBy()})
	}
	doc := goyaml.MapSlice{
		{Key: "apiVersion", Value: APIVersion},
		{Key: "kind", Value: Kind},
		{Key: "metadata", Value: md},
		{Key: "spec", Value: tree},
	}
	return goyaml.Marshal(doc)
}

// specTree is the spec's JSON form as an ordered YAML tree: fields in proto order, enums in
// Cilium's spelling, free-form maps with sorted keys.
func specTree(spec *ebbflowv1.ProfileSpec) (goyaml.MapSlice, error) {
	if spec == nil {
		spec = &ebbflowv1.ProfileSpec{}
	}
	js, err := protojson.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode profile spec: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("encode profile spec: %w", err)
	}
	tree, _ := orderMessage(generic, specDesc).(goyaml.MapSlice)
	if tree == nil {
		tree = goyaml.MapSlice{}
	}
	return tree, nil
}

func orderMessage(v any, md protoreflect.MessageDescriptor) any {
	m, ok := v.(map[string]any)
	if !ok || isFreeForm(md) {
		return plainYAML(v)
	}
	out := goyaml.MapSlice{}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		val, ok := m[fd.JSONName()]
		if !ok {
			continue
		}
		out = append(out, goyaml.MapItem{Key: fd.JSONName(), Value: orderField(val, fd)})
	}
	return out
}

func orderField(v any, fd protoreflect.FieldDescriptor) any {
	switch {
	case fd.IsList():
		list, _ := v.([]any)
		out := make([]any, len(list))
		for i, e := range list {
			out[i] = orderSingle(e, fd)
		}
		return out
	case fd.IsMap():
		m, _ := v.(map[string]any)
		out := goyaml.MapSlice{}
		for _, k := range sortedKeys(m) {
			out = append(out, goyaml.MapItem{Key: k, Value: orderSingle(m[k], fd.MapValue())})
		}
		return out
	}
	return orderSingle(v, fd)
}

func orderSingle(v any, fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return orderMessage(v, fd.Message())
	case protoreflect.EnumKind:
		if s, ok := v.(string); ok {
			if ev := fd.Enum().Values().ByName(protoreflect.Name(s)); ev != nil {
				if short, ok := enumShort(fd.Enum(), ev.Number()); ok && ev.Number() != 0 {
					return short
				}
			}
		}
	}
	return plainYAML(v)
}

// plainYAML converts decoded JSON to YAML values: sorted maps, numbers as int64 or float64.
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
