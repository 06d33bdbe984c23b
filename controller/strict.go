package controller

import (
	"errors"
	"fmt"
	"strconv"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A request is decoded strictly, whatever its protocol: a field the schema does not declare is
// refused, not dropped. Connect's own JSON codec discards unknown fields so that clients and
// servers may differ in schema version; for this API that trade is wrong, because a dropped
// field is a silent change of meaning (SetClusterLabels with "lables" would store no labels).
//
//   - JSON (Connect, the portal): strictJSON refuses an unknown field name while decoding, with
//     InvalidArgument naming the field.
//   - Binary (gRPC, gRPC-Web, Connect proto): the message keeps unknown field numbers; the
//     interceptor's validation refuses any (checkSchema), naming the field's path and number.
//   - Enums are open in proto3: a number outside the declared set decodes in both encodings;
//     checkSchema refuses it, naming the field.

// strictCodecs replaces Connect's JSON codecs (both content-type names) with strictJSON.
func strictCodecs() connect.HandlerOption {
	return connect.WithHandlerOptions(
		connect.WithCodec(strictJSON{name: "json"}),
		connect.WithCodec(strictJSON{name: "json; charset=utf-8"}),
	)
}

// strictJSON is Connect's protojson codec without DiscardUnknown.
type strictJSON struct{ name string }

func (c strictJSON) Name() string { return c.name }

func (c strictJSON) IsBinary() bool { return false }

func (c strictJSON) Marshal(msg any) ([]byte, error) {
	m, ok := msg.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a protobuf message", msg)
	}
	return protojson.MarshalOptions{}.Marshal(m)
}

func (c strictJSON) MarshalAppend(dst []byte, msg any) ([]byte, error) {
	m, ok := msg.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a protobuf message", msg)
	}
	return protojson.MarshalOptions{}.MarshalAppend(dst, m)
}

func (c strictJSON) Unmarshal(data []byte, msg any) error {
	m, ok := msg.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a protobuf message", msg)
	}
	if len(data) == 0 {
		return errors.New("an empty body is not a JSON object: send {} for a request with no fields")
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, m); err != nil {
		// protojson names the field and its position: `proto: (line 1:22): unknown field "lables"`.
		return fmt.Errorf("%s (fields the schema of %s does not declare are refused, not dropped; JSON names are lowerCamelCase or the proto names)",
			err, m.ProtoReflect().Descriptor().FullName())
	}
	return nil
}

// maxSchemaIssues bounds what checkSchema reports of one message.
const maxSchemaIssues = 20

// checkSchema adds an issue for every unknown field number and every enum value outside its
// declared set in m and the messages it holds, each named by its path from the request.
func (v *issues) checkSchema(m protoreflect.Message, path string) {
	if len(v.Issues) >= maxSchemaIssues {
		return
	}
	if raw := m.GetUnknown(); len(raw) > 0 {
		for len(raw) > 0 {
			num, typ, n := protowire.ConsumeTag(raw)
			if n < 0 {
				break
			}
			size := protowire.ConsumeFieldValue(num, typ, raw[n:])
			if size < 0 {
				break
			}
			raw = raw[n+size:]
			v.Add(join(path, "#"+strconv.Itoa(int(num))), "unknown-field",
				"field number %d is not declared by %s: refused rather than ignored (is the client built from a newer schema?)",
				num, m.Descriptor().FullName())
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		p := join(path, string(fd.Name()))
		switch {
		case fd.IsMap():
			val.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				ep := p + "[" + clip(k.String(), 64) + "]"
				v.checkValue(fd.MapValue(), mv, ep)
				return len(v.Issues) < maxSchemaIssues
			})
		case fd.IsList():
			l := val.List()
			if fd.Kind() != protoreflect.EnumKind && fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
				break // scalars: nothing to check, and samples may be long
			}
			for i := 0; i < l.Len() && len(v.Issues) < maxSchemaIssues; i++ {
				v.checkValue(fd, l.Get(i), p+"["+strconv.Itoa(i)+"]")
			}
		default:
			v.checkValue(fd, val, p)
		}
		return len(v.Issues) < maxSchemaIssues
	})
}

// checkValue checks one value of field fd (an element, for a list or map).
func (v *issues) checkValue(fd protoreflect.FieldDescriptor, val protoreflect.Value, path string) {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if fd.Enum().Values().ByNumber(val.Enum()) == nil {
			v.Add(path, "enum-defined", "%d is not a value of %s", val.Enum(), fd.Enum().FullName())
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		v.checkSchema(val.Message(), path)
	}
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// schemaRules adds an issue for every violation of the request's rules declared in the schema
// (protovalidate's buf.validate annotations in proto/ebbflow/v1: lengths, patterns, ranges,
// required fields, durations with bounds), named by the field's path and the rule's id, e.g.
// `name: value does not match regex pattern ... (string.pattern)`. The rules a schema cannot
// say (label syntax, selectors, certificate requests, cross-field rules) stay in
// validateRequest. It returns an error only when the rules themselves cannot be evaluated.
func (v *issues) schemaRules(m proto.Message) error {
	err := protovalidate.Validate(m)
	if err == nil {
		return nil
	}
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		return connect.NewError(connect.CodeInternal, fmt.Errorf("validating %s: %w", m.ProtoReflect().Descriptor().FullName(), err))
	}
	for _, viol := range ve.Violations {
		field := protovalidate.FieldPathString(viol.Proto.GetField())
		if field == "" {
			field = "(message)"
		}
		v.Add(field, viol.Proto.GetRuleId(), "%s", viol.Proto.GetMessage())
	}
	return nil
}
