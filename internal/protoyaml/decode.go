package protoyaml

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Decode reads v, a JSON object as JSONValue returns it, into m. Every error is a *FieldError
// whose path starts with path (spec.automatic.waveSize). v is rewritten in place.
func (o Options) Decode(v any, m proto.Message, path string) error {
	fixed, err := o.message(v, m.ProtoReflect().Descriptor(), path)
	if err != nil {
		return err
	}
	js, err := json.Marshal(fixed)
	if err != nil {
		return Errorf(path, "%v", err)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		// protojson writes "proto:" then a space or, at random, a no-break space (so that no
		// one depends on its text): trim both.
		msg := strings.TrimPrefix(err.Error(), "proto:")
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, " "), "\u00a0")
		return Errorf(path, "%s", msg)
	}
	return nil
}

// message checks a JSON object against a message descriptor, naming any unknown or wrongly
// typed field by its path, and rewrites durations and enum spellings to protojson's.
func (o Options) message(v any, md protoreflect.MessageDescriptor, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch md.FullName() {
	case "google.protobuf.Duration":
		if o.GoDurations {
			return o.duration(v, path)
		}
		return v, nil
	case "google.protobuf.Value", "google.protobuf.Timestamp":
		return v, nil
	case "google.protobuf.Struct":
		if _, ok := v.(map[string]any); !ok {
			return nil, Errorf(path, "want a mapping, got %s", o.Describe(v))
		}
		return v, nil
	case "google.protobuf.ListValue":
		if _, ok := v.([]any); !ok {
			return nil, Errorf(path, "want a list, got %s", o.Describe(v))
		}
		return v, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, Errorf(path, "want a mapping, got %s", o.Describe(v))
	}
	seen := map[protoreflect.FieldNumber]string{}
	oneofs := map[protoreflect.FullName]string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k))
		}
		if fd == nil {
			return nil, Errorf(PathKey(path, k), "unknown field%s", Suggest(k, fieldNames(md)))
		}
		if other, dup := seen[fd.Number()]; dup {
			return nil, Errorf(PathKey(path, fd.JSONName()), "set twice, as %q and %q", other, k)
		}
		seen[fd.Number()] = k
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && m[k] != nil {
			if other, dup := oneofs[od.FullName()]; dup {
				return nil, Errorf(PathKey(path, k), "give either %s or %s, not both", other, k)
			}
			oneofs[od.FullName()] = k
		}
		out, err := o.field(m[k], fd, PathKey(path, fd.JSONName()))
		if err != nil {
			return nil, err
		}
		m[k] = out
	}
	return m, nil
}

func fieldNames(md protoreflect.MessageDescriptor) []string {
	out := make([]string, md.Fields().Len())
	for i := range out {
		out[i] = md.Fields().Get(i).JSONName()
	}
	return out
}

func (o Options) field(v any, fd protoreflect.FieldDescriptor, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch {
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			return nil, Errorf(path, "want a list, got %s", o.Describe(v))
		}
		for i, e := range list {
			if e == nil {
				return nil, Errorf(Index(path, i), "a list entry may not be empty")
			}
			out, err := o.single(e, fd, Index(path, i))
			if err != nil {
				return nil, err
			}
			list[i] = out
		}
		return list, nil
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok {
			return nil, Errorf(path, "want a mapping, got %s", o.Describe(v))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if m[k] == nil && !isValue(fd.MapValue()) {
				return nil, Errorf(PathKey(path, k), "may not be empty")
			}
			out, err := o.single(m[k], fd.MapValue(), PathKey(path, k))
			if err != nil {
				return nil, err
			}
			m[k] = out
		}
		return m, nil
	}
	return o.single(v, fd, path)
}

// isValue reports whether a field holds a google.protobuf.Value, for which null is a value.
func isValue(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Value"
}

func (o Options) single(v any, fd protoreflect.FieldDescriptor, path string) (any, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return o.message(v, fd.Message(), path)
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return nil, Errorf(path, "want true or false, got %s", o.Describe(v))
		}
		return v, nil
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			return nil, Errorf(path, "want a string, got %s (quote it)", o.Describe(v))
		}
		return v, nil
	case protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return nil, Errorf(path, "want base64 text, got %s", o.Describe(v))
		}
		return v, nil
	case protoreflect.EnumKind:
		return o.enum(v, fd.Enum(), path)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return o.float(v, fd.Kind() == protoreflect.FloatKind, path)
	}
	return o.integer(v, fd.Kind(), path)
}

// duration takes a Go duration (10m, 1h30m, 0.05s, 600s) and writes protojson's seconds.
func (o Options) duration(v any, path string) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, Errorf(path, "want a duration like 90s, 10m or 1h30m, got %s", o.Describe(v))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, Errorf(path, "want a duration like 90s, 10m or 1h30m, got %s", o.Describe(v))
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s", nil
}

func (o Options) enum(v any, ed protoreflect.EnumDescriptor, path string) (any, error) {
	choices := o.enumChoices(ed)
	switch x := v.(type) {
	case string:
		if ev := o.enumValue(ed, x); ev != nil {
			return string(ev.Name()), nil
		}
		hint := ""
		if o.SuggestEnums {
			hint = Suggest(x, choices)
		}
		return nil, Errorf(path, "unknown value %q%s; want one of %s", o.clip(x), hint, strings.Join(choices, ", "))
	case json.Number:
		if !o.EnumNumbers {
			break
		}
		n, err := strconv.ParseInt(x.String(), 10, 32)
		if err != nil {
			return nil, Errorf(path, "unknown value %s; want one of %s", o.clip(x.String()), strings.Join(choices, ", "))
		}
		return json.Number(strconv.FormatInt(n, 10)), nil
	}
	return nil, Errorf(path, "want one of %s, got %s", strings.Join(choices, ", "), o.Describe(v))
}

// float takes a number, or protojson's NaN, Infinity and -Infinity; single is a float field's
// 32 bits.
func (o Options) float(v any, single bool, path string) (any, error) {
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
		return nil, Errorf(path, "want a number, got %s", o.Describe(v))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || (single && math.Abs(f) > math.MaxFloat32) {
		return nil, Errorf(path, "want a number, got %s", o.Describe(v))
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

// integer takes a whole number (or one quoted, as protojson writes 64-bit ones) that fits the
// field's kind.
func (o Options) integer(v any, kind protoreflect.Kind, path string) (any, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return nil, Errorf(path, "want a whole number, got %s", o.Describe(v))
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
	if o.WholeFloats {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 &&
			strings.ContainsAny(s, ".eE") {
			s = strconv.FormatFloat(f, 'f', 0, 64)
		}
	}
	if unsigned {
		if n, err := strconv.ParseUint(s, 10, bits); err == nil {
			return json.Number(strconv.FormatUint(n, 10)), nil
		}
		return nil, Errorf(path, "want a whole number of at least 0 that fits %d bits, got %s", bits, o.Describe(v))
	}
	if n, err := strconv.ParseInt(s, 10, bits); err == nil {
		return json.Number(strconv.FormatInt(n, 10)), nil
	}
	return nil, Errorf(path, "want a whole number that fits %d bits, got %s", bits, o.Describe(v))
}
