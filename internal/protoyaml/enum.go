package protoyaml

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// EnumSpelling is a short way to write enum values, such as rollbackFailedClusters for
// FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS.
type EnumSpelling interface {
	// Short is the spelling of a value of ed: what Tree writes and errors list.
	Short(ed protoreflect.EnumDescriptor, ev protoreflect.EnumValueDescriptor) string
	// Parse is the value of ed that s spells, or nil. Decode has tried the proto names first and
	// ignores a zero value.
	Parse(ed protoreflect.EnumDescriptor, s string) protoreflect.EnumValueDescriptor
}

// CamelCase spells a value in camelCase without its enum's prefix: FAILURE_POLICY_HALT_ONLY is
// haltOnly. It reads any case with or without '-' and '_' (haltOnly, halt-only, HALT_ONLY).
type CamelCase struct{}

// Short is the camelCase spelling of ev.
func (CamelCase) Short(ed protoreflect.EnumDescriptor, ev protoreflect.EnumValueDescriptor) string {
	parts := strings.Split(strings.ToLower(strings.TrimPrefix(string(ev.Name()), camelPrefix(ed))), "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// Parse finds the non-zero value s spells, ignoring case, '-' and '_'.
func (CamelCase) Parse(ed protoreflect.EnumDescriptor, s string) protoreflect.EnumValueDescriptor {
	squash := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	want := squash(s)
	for i := range ed.Values().Len() {
		ev := ed.Values().Get(i)
		if ev.Number() != 0 && squash(strings.TrimPrefix(string(ev.Name()), camelPrefix(ed))) == want {
			return ev
		}
	}
	return nil
}

// camelPrefix is the common prefix of an enum's value names, read off its zero value:
// FAILURE_POLICY_ of FAILURE_POLICY_UNSPECIFIED; "" when that does not end in UNSPECIFIED.
func camelPrefix(ed protoreflect.EnumDescriptor) string {
	if ed.Values().Len() == 0 {
		return ""
	}
	if p, ok := strings.CutSuffix(string(ed.Values().Get(0).Name()), "UNSPECIFIED"); ok {
		return p
	}
	return ""
}

// enumValue resolves a proto value name, or a non-zero value's short spelling.
func (o Options) enumValue(ed protoreflect.EnumDescriptor, s string) protoreflect.EnumValueDescriptor {
	if ev := ed.Values().ByName(protoreflect.Name(s)); ev != nil {
		return ev
	}
	if o.Enums == nil {
		return nil
	}
	if ev := o.Enums.Parse(ed, s); ev != nil && ev.Number() != 0 {
		return ev
	}
	return nil
}

// enumChoices lists the spellings of an enum's non-zero values, for errors.
func (o Options) enumChoices(ed protoreflect.EnumDescriptor) []string {
	var out []string
	for i := range ed.Values().Len() {
		ev := ed.Values().Get(i)
		if ev.Number() == 0 {
			continue
		}
		if o.Enums == nil {
			out = append(out, string(ev.Name()))
		} else {
			out = append(out, o.Enums.Short(ed, ev))
		}
	}
	return out
}
