package profile

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	goyaml "go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	"github.com/ebbflow/ebbflow/internal/protoyaml"
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
type FieldError = protoyaml.FieldError

// yamlOptions is the profile file's spelling of a ProfileSpec: enums as Cilium writes them
// (native, best-effort) or by number, integers also as 1e3, quoted values clipped to 64 bytes.
var yamlOptions = protoyaml.Options{
	Enums:       ciliumEnums{},
	EnumNumbers: true,
	WholeFloats: true,
	MaxQuoted:   64,
}

// ciliumEnums is the Cilium spelling of enum values (see enumShort).
type ciliumEnums struct{}

func (ciliumEnums) Short(ed protoreflect.EnumDescriptor, ev protoreflect.EnumValueDescriptor) string {
	s, _ := enumShort(ed, ev.Number())
	return s
}

func (ciliumEnums) Parse(ed protoreflect.EnumDescriptor, s string) protoreflect.EnumValueDescriptor {
	ev, _ := enumFromShort(ed, s)
	return ev
}

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
		return "", nil, protoyaml.Errorf(FieldDocument, "%d bytes is larger than the limit of %d", len(b), MaxDocumentBytes)
	}
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return "", nil, yamlError(err)
	}
	doc, err := protoyaml.JSONValue(j)
	if err != nil {
		return "", nil, protoyaml.Errorf(FieldDocument, "not readable: %v", err)
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return "", nil, protoyaml.Errorf(FieldDocument, "must be a mapping with apiVersion, kind, metadata and spec, got %s", yamlOptions.Describe(doc))
	}
	for _, k := range sortedKeys(top) {
		switch k {
		case "apiVersion", "kind", "metadata", "spec":
		default:
			return "", nil, protoyaml.Errorf(pathKey("", k), "unknown field; a profile has apiVersion, kind, metadata and spec")
		}
	}
	if s, _ := top["apiVersion"].(string); s != APIVersion {
		return "", nil, protoyaml.Errorf("apiVersion", "must be %q, got %s", APIVersion, yamlOptions.Describe(top["apiVersion"]))
	}
	if s, _ := top["kind"].(string); s != Kind {
		return "", nil, protoyaml.Errorf("kind", "must be %q, got %s", Kind, yamlOptions.Describe(top["kind"]))
	}
	name, err := decodeMetadata(top["metadata"])
	if err != nil {
		return "", nil, err
	}
	spec := &ebbflowv1.ProfileSpec{}
	if top["spec"] == nil {
		return name, spec, nil
	}
	if err := yamlOptions.Decode(top["spec"], spec, "spec"); err != nil {
		return "", nil, err
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
		return "", protoyaml.Errorf("metadata", "want a mapping, got %s", yamlOptions.Describe(v))
	}
	for _, k := range sortedKeys(md) {
		if !slices.Contains(metadataKeys, k) {
			return "", protoyaml.Errorf(pathKey("metadata", k), "unknown field; metadata has name (and read-only revision, createTime, updateTime, updatedBy)")
		}
	}
	if md["name"] == nil {
		return "", nil
	}
	name, ok := md["name"].(string)
	if !ok {
		return "", protoyaml.Errorf("metadata.name", "want a string, got %s", yamlOptions.Describe(md["name"]))
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
		return protoyaml.Errorf(pathKey("", key), "repeated key: %s", msg)
	}
	return protoyaml.Errorf(FieldDocument, "not valid YAML: %s", msg)
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
	tree, err := yamlOptions.Tree(spec)
	if err != nil {
		return nil, fmt.Errorf("encode profile spec: %w", err)
	}
	return tree, nil
}
