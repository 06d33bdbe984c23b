// Package protoyaml reads and writes protobuf messages as YAML files that people write by hand.
//
// Decoding is strict: an unknown field is an error naming its path and the closest field name,
// a field set twice (by its JSON and its proto name) or two members of one oneof are errors, and
// every value is checked against its field's type before protojson reads it, so that an error
// names the field at fault rather than a byte offset. Encoding writes the fields in proto order,
// enums in their short spelling and free-form maps with sorted keys, so that what Tree writes
// Decode reads back unchanged.
//
// The caller reads the document (yaml.YAMLToJSONStrict, then JSONValue) and checks its envelope
// (apiVersion, kind, metadata); Options.Decode reads the message under it and Options.Tree writes
// one back. Options holds what differs between file formats: the short spelling of enums, Go
// durations, integers written as 1e3, how long a value quoted in an error may be.
package protoyaml

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Options are the choices of one file format. The zero value takes protojson's forms only.
type Options struct {
	// Enums is the short spelling enum values take besides their proto names, and the one Tree
	// writes (a zero value keeps its proto name). Nil: proto names only.
	Enums EnumSpelling
	// EnumNumbers takes an enum value by its number too, as protojson does.
	EnumNumbers bool
	// SuggestEnums adds the closest spelling to the error about an unknown enum value.
	SuggestEnums bool
	// GoDurations reads a google.protobuf.Duration as Go writes it (90s, 10m, 1h30m, 0.05s) and
	// has Tree write it so. Without it the value goes to protojson as it is ("600s").
	GoDurations bool
	// WholeFloats takes a whole number written as a float (1e3, 16381.0) for an integer field.
	WholeFloats bool
	// MaxQuoted clips a value quoted in an error to this many bytes ("..." at the end); 0 quotes
	// it whole.
	MaxQuoted int
}

// FieldError is a rejected document: the field path at fault (spec.gates.soakTime,
// spec.budgets[0], spec.values["a.b"]) and what is wrong with it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Errorf is a *FieldError for field with a formatted message.
func Errorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// JSONValue decodes JSON into the values Decode and Tree work on: map[string]any, []any, string,
// bool, nil and json.Number.
func JSONValue(j []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// Describe names a JSON value for an error: "nothing", a quoted string, "the number 3",
// "a list"...
func (o Options) Describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(o.clip(x))
	case bool:
		return "a boolean"
	case json.Number:
		return "the number " + o.clip(x.String())
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func (o Options) clip(s string) string {
	if o.MaxQuoted <= 0 || len(s) <= o.MaxQuoted {
		return s
	}
	return s[:max(o.MaxQuoted-3, 0)] + "..."
}

// PathKey appends a map key to a field path: a.key, or a["odd key"] for a key that is not a
// plain name.
func PathKey(base, key string) string {
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

// Index appends a list index to a field path: a[0].
func Index(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }

// Suggest proposes the name a misspelt one probably meant, " (did you mean sortLabel?)", or ""
// when none is within two edits. Case does not count; the first of equally close names wins.
func Suggest(k string, names []string) string {
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

// editDistance is the Levenshtein distance of a and b, or 64 for a longer string.
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
