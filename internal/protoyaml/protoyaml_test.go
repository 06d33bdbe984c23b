package protoyaml

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goyaml "go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// rolloutLike is the spelling of a file that takes short enums and Go durations.
var rolloutLike = Options{Enums: CamelCase{}, SuggestEnums: true, GoDurations: true}

const (
	policies    = "haltOnly, rollbackFailedClusters, rollbackWave"
	policyNames = "FAILURE_POLICY_HALT_ONLY, FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS, FAILURE_POLICY_ROLLBACK_WAVE"
)

// scalarsDesc is a message with the scalar kinds the project's messages lack (float, bytes,
// unsigned 32 bits, a map of integers):
//
//	message Scalars {
//	  float f = 1; double d = 2; int32 i32 = 3; uint32 u32 = 4; int64 i64 = 5; uint64 u64 = 6;
//	  bytes b = 7; map<string, int32> m = 8;
//	}
var scalarsDesc = func() protoreflect.MessageDescriptor {
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}
	}
	m := field("m", 8, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE)
	m.Label, m.TypeName = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum(), proto.String(".protoyamltest.Scalars.MEntry")
	file, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    proto.String("protoyamltest/scalars.proto"),
		Package: proto.String("protoyamltest"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Scalars"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("f", 1, descriptorpb.FieldDescriptorProto_TYPE_FLOAT),
				field("d", 2, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE),
				field("i32", 3, descriptorpb.FieldDescriptorProto_TYPE_INT32),
				field("u32", 4, descriptorpb.FieldDescriptorProto_TYPE_UINT32),
				field("i64", 5, descriptorpb.FieldDescriptorProto_TYPE_INT64),
				field("u64", 6, descriptorpb.FieldDescriptorProto_TYPE_UINT64),
				field("b", 7, descriptorpb.FieldDescriptorProto_TYPE_BYTES),
				m,
			},
			NestedType: []*descriptorpb.DescriptorProto{{
				Name: proto.String("MEntry"),
				Field: []*descriptorpb.FieldDescriptorProto{
					field("key", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING),
					field("value", 2, descriptorpb.FieldDescriptorProto_TYPE_INT32),
				},
				Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
			}},
		}},
	}, nil)
	if err != nil {
		panic(err)
	}
	return file.Messages().Get(0)
}()

func newScalars() proto.Message { return dynamicpb.NewMessage(scalarsDesc) }

// scalars is a Scalars message read by protojson alone.
func scalars(t *testing.T, js string) proto.Message {
	t.Helper()
	m := newScalars()
	if err := protojson.Unmarshal([]byte(js), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// sameJSON is nil when a and b have the same protojson form.
func sameJSON(t *testing.T, a, b proto.Message) error {
	t.Helper()
	ja, err := protojson.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(ja) != string(jb) {
		return fmt.Errorf("%s != %s", ja, jb)
	}
	return nil
}

// decode reads doc into m: YAML, or JSON to give numbers exactly as written (1e3).
func decode(t *testing.T, o Options, doc string, m proto.Message) error {
	t.Helper()
	j := []byte(doc)
	if !strings.HasPrefix(doc, "{") {
		var err error
		if j, err = yaml.YAMLToJSONStrict([]byte(doc)); err != nil {
			t.Fatalf("YAML: %v", err)
		}
	}
	v, err := JSONValue(j)
	if err != nil {
		t.Fatalf("JSON: %v", err)
	}
	return o.Decode(v, m, "spec")
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		doc  string
		want proto.Message
	}{
		{"proto enum name", Options{}, "failurePolicy: FAILURE_POLICY_HALT_ONLY",
			&ebbflowv1.RolloutSpec{FailurePolicy: ebbflowv1.FailurePolicy_FAILURE_POLICY_HALT_ONLY}},
		{"camelCase enum", rolloutLike, "failurePolicy: rollbackFailedClusters",
			&ebbflowv1.RolloutSpec{FailurePolicy: ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS}},
		{"kebab-case enum read as camelCase", rolloutLike, "failurePolicy: rollback-failed-clusters",
			&ebbflowv1.RolloutSpec{FailurePolicy: ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS}},
		{"enum without prefix, upper case", rolloutLike, "phases: [BASELINE, l7]",
			&ebbflowv1.RolloutSpec{Phases: []ebbflowv1.Phase{ebbflowv1.Phase_PHASE_BASELINE, ebbflowv1.Phase_PHASE_L7}}},
		{"enum by number", Options{EnumNumbers: true}, "failurePolicy: 2",
			&ebbflowv1.RolloutSpec{FailurePolicy: ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS}},
		{"Go duration", rolloutLike, "phaseTimeout: 1h30m", &ebbflowv1.RolloutSpec{PhaseTimeout: durationpb.New(90 * time.Minute)}},
		{"Go duration under a second", rolloutLike, "phaseTimeout: 0.05s", &ebbflowv1.RolloutSpec{PhaseTimeout: durationpb.New(50 * time.Millisecond)}},
		{"protojson duration", Options{}, "phaseTimeout: 600s", &ebbflowv1.RolloutSpec{PhaseTimeout: durationpb.New(10 * time.Minute)}},
		{"proto field name", Options{}, "sort_label: ring", &ebbflowv1.RolloutSpec{SortLabel: "ring"}},
		{"whole float", Options{WholeFloats: true}, `{"i32": 1e3}`, scalars(t, `{"i32": 1000}`)},
		{"whole float with a point", Options{WholeFloats: true}, `{"i64": 16381.0}`, scalars(t, `{"i64": "16381"}`)},
		{"quoted 64-bit integer", Options{}, `{"u64": "18446744073709551615"}`, scalars(t, `{"u64": "18446744073709551615"}`)},
		{"NaN and infinities", Options{}, `{"d": "NaN", "f": "-Infinity"}`, scalars(t, `{"d": "NaN", "f": "-Infinity"}`)},
		{"base64", Options{}, "b: aGk=", scalars(t, `{"b": "aGk="}`)},
		{"map", Options{}, "m: {b: 2, a: 1}", scalars(t, `{"m": {"a": 1, "b": 2}}`)},
		{"free-form null", Options{}, "values: {extra: {a: null}}", &ebbflowv1.BaselinePhase{Values: &ebbflowv1.CiliumValues{
			Extra: map[string]*structpb.Value{"a": structpb.NewNullValue()}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.want.ProtoReflect().New().Interface()
			if err := decode(t, tt.opts, tt.doc, got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !proto.Equal(got, tt.want) && sameJSON(t, got, tt.want) != nil { // NaN != NaN
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		doc  string
		msg  proto.Message
		want string
	}{
		{"unknown key with suggestion", Options{}, "sortLable: ring", &ebbflowv1.RolloutSpec{},
			"spec.sortLable: unknown field (did you mean sortLabel?)"},
		{"unknown key, nested", Options{}, "automatic: {canaryCont: 1}", &ebbflowv1.RolloutSpec{},
			"spec.automatic.canaryCont: unknown field (did you mean canaryCount?)"},
		{"unknown key far from any field", Options{}, "zzzzzz: 1", &ebbflowv1.RolloutSpec{},
			"spec.zzzzzz: unknown field"},
		{"odd key quoted in the path", Options{}, `"a b": 1`, &ebbflowv1.RolloutSpec{},
			`spec["a b"]: unknown field`},
		{"set twice", Options{}, "sortLabel: a\nsort_label: b", &ebbflowv1.RolloutSpec{},
			`spec.sortLabel: set twice, as "sortLabel" and "sort_label"`},
		{"two of a oneof", Options{}, "automatic: {waveSize: 1, wavePercent: 10}", &ebbflowv1.RolloutSpec{},
			"spec.automatic.waveSize: give either wavePercent or waveSize, not both"},
		{"short enum not taken", Options{}, "failurePolicy: haltOnly", &ebbflowv1.RolloutSpec{},
			`spec.failurePolicy: unknown value "haltOnly"; want one of ` + policyNames},
		{"enum misspelt, suggested", rolloutLike, "failurePolicy: haltOnyl", &ebbflowv1.RolloutSpec{},
			`spec.failurePolicy: unknown value "haltOnyl" (did you mean haltOnly?); want one of ` + policies},
		{"enum misspelt, not suggested", Options{Enums: CamelCase{}}, "failurePolicy: haltOnyl", &ebbflowv1.RolloutSpec{},
			`spec.failurePolicy: unknown value "haltOnyl"; want one of ` + policies},
		{"short spelling of the zero value", rolloutLike, "failurePolicy: unspecified", &ebbflowv1.RolloutSpec{},
			`spec.failurePolicy: unknown value "unspecified"; want one of ` + policies},
		{"enum number not taken", rolloutLike, "failurePolicy: 2", &ebbflowv1.RolloutSpec{},
			"spec.failurePolicy: want one of " + policies + ", got the number 2"},
		{"enum number out of range", Options{EnumNumbers: true}, "failurePolicy: 4294967296", &ebbflowv1.RolloutSpec{},
			"spec.failurePolicy: unknown value 4294967296; want one of " + policyNames},
		{"duration as a number", rolloutLike, "phaseTimeout: 90", &ebbflowv1.RolloutSpec{},
			"spec.phaseTimeout: want a duration like 90s, 10m or 1h30m, got the number 90"},
		{"duration unreadable", rolloutLike, "phaseTimeout: soon", &ebbflowv1.RolloutSpec{},
			`spec.phaseTimeout: want a duration like 90s, 10m or 1h30m, got "soon"`},
		{"Go duration without GoDurations", Options{}, "phaseTimeout: 10m", &ebbflowv1.RolloutSpec{},
			`spec: (line 1:17): invalid google.protobuf.Duration value "10m"`},
		{"int32 too large", Options{}, `{"i32": 2147483648}`, newScalars(),
			"spec.i32: want a whole number that fits 32 bits, got the number 2147483648"},
		{"int64 too large", Options{}, `{"i64": "9223372036854775808"}`, newScalars(),
			`spec.i64: want a whole number that fits 64 bits, got "9223372036854775808"`},
		{"uint64 negative", Options{}, `{"u64": -1}`, newScalars(),
			"spec.u64: want a whole number of at least 0 that fits 64 bits, got the number -1"},
		{"uint32 too large", Options{}, `{"u32": 4294967296}`, newScalars(),
			"spec.u32: want a whole number of at least 0 that fits 32 bits, got the number 4294967296"},
		{"whole float without WholeFloats", Options{}, `{"i32": 1e3}`, newScalars(),
			"spec.i32: want a whole number that fits 32 bits, got the number 1e3"},
		{"fraction for an integer", Options{WholeFloats: true}, `{"i32": 1.5}`, newScalars(),
			"spec.i32: want a whole number that fits 32 bits, got the number 1.5"},
		{"whole float beyond 2^53", Options{WholeFloats: true}, `{"i64": 1e16}`, newScalars(),
			"spec.i64: want a whole number that fits 64 bits, got the number 1e16"},
		{"integer as a boolean", Options{}, `{"i64": true}`, newScalars(),
			"spec.i64: want a whole number, got a boolean"},
		{"float beyond 32 bits", Options{}, `{"f": 1e39}`, newScalars(),
			"spec.f: want a number, got the number 1e39"},
		{"double beyond 64 bits", Options{}, `{"d": 1e309}`, newScalars(),
			"spec.d: want a number, got the number 1e309"},
		{"double as words", Options{}, `{"d": "lots"}`, newScalars(),
			`spec.d: want a number, got "lots"`},
		{"bytes as a number", Options{}, `{"b": 3}`, newScalars(),
			"spec.b: want base64 text, got the number 3"},
		{"empty map value", Options{}, `{"m": {"a": null}}`, newScalars(),
			"spec.m.a: may not be empty"},
		{"odd map key", Options{}, `{"m": {"a.b": "x"}}`, newScalars(),
			`spec.m["a.b"]: want a whole number that fits 32 bits, got "x"`},
		{"list for a map", Options{}, `{"m": [1]}`, newScalars(),
			"spec.m: want a mapping, got a list"},
		{"number for a string", Options{}, "sortLabel: 3", &ebbflowv1.RolloutSpec{},
			"spec.sortLabel: want a string, got the number 3 (quote it)"},
		{"string for a boolean", Options{}, "automatic: {gates: {requireApproval: yes please}}", &ebbflowv1.RolloutSpec{},
			`spec.automatic.gates.requireApproval: want true or false, got "yes please"`},
		{"empty list entry", Options{}, "phases: [PHASE_BASELINE, null]", &ebbflowv1.RolloutSpec{},
			"spec.phases[1]: a list entry may not be empty"},
		{"mapping for a list", Options{}, "phases: {a: 1}", &ebbflowv1.RolloutSpec{},
			"spec.phases: want a list, got a mapping"},
		{"list for a Struct", Options{}, "policies: [[1]]", &ebbflowv1.L7Phase{},
			"spec.policies[0]: want a mapping, got a list"},
		{"long value clipped", Options{MaxQuoted: 10}, `{"i32": "` + strings.Repeat("y", 20) + `"}`, newScalars(),
			`spec.i32: want a whole number that fits 32 bits, got "yyyyyyy..."`},
		{"long value whole", Options{}, `{"i32": "` + strings.Repeat("y", 20) + `"}`, newScalars(),
			`spec.i32: want a whole number that fits 32 bits, got "yyyyyyyyyyyyyyyyyyyy"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decode(t, tt.opts, tt.doc, tt.msg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a *FieldError, got %v", err)
			}
			// protojson words its errors with a randomly non-breaking space after "proto:",
			// which keeps Decode from trimming the prefix half the time: compare loosely.
			got := strings.Replace(strings.Join(strings.Fields(err.Error()), " "), ": proto: ", ": ", 1)
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestTreeOrderAndSpelling(t *testing.T) {
	spec := &ebbflowv1.RolloutSpec{
		Description:   "last in the proto, last in the file",
		PhaseTimeout:  durationpb.New(90 * time.Minute),
		FailurePolicy: ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS,
		Phases:        []ebbflowv1.Phase{ebbflowv1.Phase_PHASE_L7, ebbflowv1.Phase_PHASE_BASELINE},
		Waves: &ebbflowv1.RolloutSpec_Automatic{Automatic: &ebbflowv1.AutomaticWaves{
			Gates:       &ebbflowv1.WaveGates{SoakTime: durationpb.New(10 * time.Minute), MaxConcurrency: 2},
			CanaryCount: 1,
		}},
		Profile: "eks",
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"short spellings", rolloutLike, `profile: eks
automatic:
  canaryCount: 1
  gates:
    maxConcurrency: 2
    soakTime: 10m
phases:
- l7
- baseline
failurePolicy: rollbackFailedClusters
description: last in the proto, last in the file
phaseTimeout: 1h30m
`},
		{"protojson's forms", Options{}, `profile: eks
automatic:
  canaryCount: 1
  gates:
    maxConcurrency: 2
    soakTime: 600s
phases:
- PHASE_L7
- PHASE_BASELINE
failurePolicy: FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS
description: last in the proto, last in the file
phaseTimeout: 5400s
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree, err := tt.opts.Tree(spec)
			if err != nil {
				t.Fatal(err)
			}
			out, err := goyaml.Marshal(tree)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", out, tt.want)
			}
			back := &ebbflowv1.RolloutSpec{}
			if err := decode(t, tt.opts, string(out), back); err != nil {
				t.Fatalf("Decode of Tree: %v", err)
			}
			if !proto.Equal(back, spec) {
				t.Fatalf("round trip: got %v, want %v", back, spec)
			}
		})
	}
}

func TestTreeFreeForm(t *testing.T) {
	v := &ebbflowv1.BaselinePhase{}
	if err := decode(t, Options{}, "values: {extra: {z: 1, a: {k: [1.5, x], b: null}}}", v); err != nil {
		t.Fatal(err)
	}
	tree, err := Options{}.Tree(v)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := goyaml.Marshal(tree)
	want := "values:\n  extra:\n    a:\n      b: null\n      k:\n      - 1.5\n      - x\n    z: 1\n"
	if string(out) != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	if tree, err := (Options{}).Tree(&ebbflowv1.RolloutSpec{}); err != nil || len(tree) != 0 || tree == nil {
		t.Fatalf("Tree of an empty message = %#v, %v", tree, err)
	}
}

func TestPathKey(t *testing.T) {
	for _, tt := range []struct{ base, key, want string }{
		{"", "spec", "spec"},
		{"spec", "sortLabel", "spec.sortLabel"},
		{"spec", "snake_case-key", "spec.snake_case-key"},
		{"spec", "a.b", `spec["a.b"]`},
		{"spec", "9lives", `spec["9lives"]`},
		{"spec", "-x", `spec["-x"]`},
		{"spec", "", `spec[""]`},
		{"", "a b", `["a b"]`},
	} {
		if got := PathKey(tt.base, tt.key); got != tt.want {
			t.Errorf("PathKey(%q, %q) = %s, want %s", tt.base, tt.key, got, tt.want)
		}
	}
	if got := Index("spec.phases", 2); got != "spec.phases[2]" {
		t.Errorf("Index = %s", got)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"waveSize", "wavePercent", "gates"}
	for _, tt := range []struct{ in, want string }{
		{"wavesize", " (did you mean waveSize?)"},
		{"wavePercnt", " (did you mean wavePercent?)"},
		{"gate", " (did you mean gates?)"},
		{"canaryCount", ""},
		{strings.Repeat("g", 80), ""},
	} {
		if got := Suggest(tt.in, names); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
