package main

import (
	"maps"
	"slices"
	"strings"

	goyaml "go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	"github.com/ebbflow/ebbflow/internal/protoyaml"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// A rollout file is read as a profile file is: the same YAML parser (profile.DecodeYAML's),
// strict about unknown and repeated keys (with the closest field name), every error a
// *profile.FieldError naming the field path, which readManifests turns into the line and column
// of the user's file. On top of protojson's forms it takes durations as Go writes them (10m,
// 1h30m, 0.05s) and enum values in their short spelling (rollbackFailedClusters, haltOnly,
// http, kpr) as well as the proto's (FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS).
var rolloutOptions = protoyaml.Options{
	Enums:        protoyaml.CamelCase{},
	SuggestEnums: true,
	GoDurations:  true,
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
		return "", nil, protoyaml.Errorf(profile.FieldDocument, "not valid YAML: %s",
			strings.TrimPrefix(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "), "yaml: "))
	}
	doc, err := protoyaml.JSONValue(j)
	if err != nil {
		return "", nil, protoyaml.Errorf(profile.FieldDocument, "not readable: %v", err)
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return "", nil, protoyaml.Errorf(profile.FieldDocument, "want a mapping with apiVersion, kind, metadata and spec, got %s", rolloutOptions.Describe(doc))
	}
	topKeys := []string{"apiVersion", "kind", "metadata", "spec"}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if !slices.Contains(topKeys, k) {
			return "", nil, protoyaml.Errorf(protoyaml.PathKey("", k), "unknown field%s; a rollout has apiVersion, kind, metadata and spec", closest(k, topKeys))
		}
	}
	if s, _ := top["apiVersion"].(string); s != profile.APIVersion {
		return "", nil, protoyaml.Errorf("apiVersion", "must be %q, got %s", profile.APIVersion, rolloutOptions.Describe(top["apiVersion"]))
	}
	var name string
	if md := top["metadata"]; md != nil {
		m, ok := md.(map[string]any)
		if !ok {
			return "", nil, protoyaml.Errorf("metadata", "want a mapping, got %s", rolloutOptions.Describe(md))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if k != "name" {
				return "", nil, protoyaml.Errorf(protoyaml.PathKey("metadata", k), "unknown field%s; a rollout's metadata has its name (the rollout id)", closest(k, []string{"name"}))
			}
		}
		if m["name"] != nil {
			if name, ok = m["name"].(string); !ok {
				return "", nil, protoyaml.Errorf("metadata.name", "want a string, got %s", rolloutOptions.Describe(m["name"]))
			}
		}
	}
	if top["spec"] == nil {
		return "", nil, protoyaml.Errorf("spec", "required")
	}
	spec := &ebbflowv1.RolloutSpec{}
	if err := rolloutOptions.Decode(top["spec"], spec, "spec"); err != nil {
		return "", nil, err
	}
	return name, spec, nil
}

// encodeRolloutYAML writes a rollout in the file format decodeRolloutDoc reads: fields in proto
// order, enums in their short spelling, durations as Go writes them (10m, 1h30m).
func encodeRolloutYAML(name string, spec *ebbflowv1.RolloutSpec) ([]byte, error) {
	tree, err := rolloutOptions.Tree(spec)
	if err != nil {
		return nil, err
	}
	return goyaml.Marshal(goyaml.MapSlice{
		{Key: "apiVersion", Value: profile.APIVersion},
		{Key: "kind", Value: kindRollout},
		{Key: "metadata", Value: goyaml.MapSlice{{Key: "name", Value: name}}},
		{Key: "spec", Value: tree},
	})
}

// enumShort is an enum value's short spelling, as rollout files take it: rollbackFailedClusters.
func enumShort(ed protoreflect.EnumDescriptor, ev protoreflect.EnumValueDescriptor) string {
	return protoyaml.CamelCase{}.Short(ed, ev)
}

// closest proposes the name a misspelt one probably meant: " (did you mean sortLabel?)".
func closest(k string, names []string) string { return protoyaml.Suggest(k, names) }
