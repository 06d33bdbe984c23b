package protoyaml

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	goyaml "go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Tree is m's JSON form as an ordered YAML tree for goyaml.Marshal, in the form Decode reads:
// fields in proto order, enums in their short spelling, durations as Go writes them (with
// GoDurations), well-known types such as Struct as protojson writes them with sorted keys.
func (o Options) Tree(m proto.Message) (goyaml.MapSlice, error) {
	js, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	v, err := JSONValue(js)
	if err != nil {
		return nil, err
	}
	tree, _ := o.order(v, m.ProtoReflect().Descriptor()).(goyaml.MapSlice)
	if tree == nil {
		tree = goyaml.MapSlice{}
	}
	return tree, nil
}

func (o Options) order(v any, md protoreflect.MessageDescriptor) any {
	if o.GoDurations && md.FullName() == "google.protobuf.Duration" {
		if s, ok := v.(string); ok {
			if d, err := time.ParseDuration(s); err == nil {
				return shortDuration(d)
			}
		}
		return plainYAML(v)
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
		out = append(out, goyaml.MapItem{Key: fd.JSONName(), Value: o.orderField(val, fd)})
	}
	return out
}

func (o Options) orderField(v any, fd protoreflect.FieldDescriptor) any {
	switch {
	case fd.IsList():
		list, _ := v.([]any)
		out := make([]any, len(list))
		for i, e := range list {
			out[i] = o.orderSingle(e, fd)
		}
		return out
	case fd.IsMap():
		m, _ := v.(map[string]any)
		out := goyaml.MapSlice{}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, goyaml.MapItem{Key: k, Value: o.orderSingle(m[k], fd.MapValue())})
		}
		return out
	}
	return o.orderSingle(v, fd)
}

func (o Options) orderSingle(v any, fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return o.order(v, fd.Message())
	case protoreflect.EnumKind:
		if s, ok := v.(string); ok && o.Enums != nil {
			if ev := fd.Enum().Values().ByName(protoreflect.Name(s)); ev != nil && ev.Number() != 0 {
				return o.Enums.Short(fd.Enum(), ev)
			}
		}
	}
	return plainYAML(v)
}

// plainYAML converts a JSON value to YAML values: maps with sorted keys, numbers as int64 or
// float64.
func plainYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := goyaml.MapSlice{}
		for _, k := range slices.Sorted(maps.Keys(x)) {
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
