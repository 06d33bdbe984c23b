package profile

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	goyaml "go.yaml.in/yaml/v2"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// DiffLine is one changed leaf between two profiles. Old and New are the leaf's JSON text
// ("native", true, 16381, {} ...); an empty string means the leaf is absent on that side.
type DiffLine struct {
	Path string
	Old  string
	New  string
}

// Diff compares two profiles (name and spec; revision, times and author are left out) leaf by
// leaf in their YAML/JSON form, enums in Cilium's spelling. Lines are sorted by path, list
// indexes numerically, so the output is deterministic. A nil profile counts as empty.
func Diff(a, b *ebbflowv1.Profile) []DiffLine {
	la, lb := leaves(a), leaves(b)
	var out []diffEntry
	for k, ea := range la {
		eb, ok := lb[k]
		switch {
		case ok && eb.val == ea.val:
		case !ok && isEmptyContainer(ea.val) && hasDescendant(lb, k):
			// {} became a populated object: its leaves show the change.
		default:
			out = append(out, diffEntry{segs: ea.segs, line: DiffLine{Path: k, Old: ea.val, New: eb.val}})
		}
	}
	for k, eb := range lb {
		if _, ok := la[k]; !ok && !(isEmptyContainer(eb.val) && hasDescendant(la, k)) {
			out = append(out, diffEntry{segs: eb.segs, line: DiffLine{Path: k, New: eb.val}})
		}
	}
	slices.SortFunc(out, func(x, y diffEntry) int { return compareSegs(x.segs, y.segs) })
	lines := make([]DiffLine, len(out))
	for i, e := range out {
		lines[i] = e.line
	}
	return lines
}

func isEmptyContainer(v string) bool { return v == "{}" || v == "[]" }

// hasDescendant reports whether m has a leaf below path.
func hasDescendant(m map[string]leaf, path string) bool {
	for k := range m {
		if len(k) > len(path) && strings.HasPrefix(k, path) && (k[len(path)] == '.' || k[len(path)] == '[') {
			return true
		}
	}
	return false
}

// String renders the line as "+ path: new" (added), "- path: old" (removed) or
// "~ path: old -> new" (changed).
func (l DiffLine) String() string {
	switch {
	case l.Old == "":
		return "+ " + l.Path + ": " + l.New
	case l.New == "":
		return "- " + l.Path + ": " + l.Old
	}
	return "~ " + l.Path + ": " + l.Old + " -> " + l.New
}

type diffEntry struct {
	segs []any
	line DiffLine
}

type leaf struct {
	segs []any // string keys and int indexes
	val  string
}

func leaves(p *ebbflowv1.Profile) map[string]leaf {
	out := map[string]leaf{}
	if p.GetName() != "" {
		add(out, []any{"metadata", "name"}, p.GetName())
	}
	tree, err := specTree(p.GetSpec())
	if err != nil {
		// Only a spec protojson cannot encode (invalid UTF-8) gets here; show it as one leaf.
		add(out, []any{"spec"}, "<unencodable: "+err.Error()+">")
		return out
	}
	flatten(out, []any{"spec"}, tree)
	return out
}

func flatten(out map[string]leaf, segs []any, v any) {
	switch x := v.(type) {
	case goyaml.MapSlice:
		if len(x) == 0 {
			add(out, segs, map[string]any{})
		}
		for _, it := range x {
			k, _ := it.Key.(string)
			flatten(out, append(slices.Clip(segs), k), it.Value)
		}
	case []any:
		if len(x) == 0 {
			add(out, segs, []any{})
		}
		for i, e := range x {
			flatten(out, append(slices.Clip(segs), i), e)
		}
	default:
		add(out, segs, v)
	}
}

func add(out map[string]leaf, segs []any, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(strconv.Quote(err.Error()))
	}
	out[renderPath(segs)] = leaf{segs: segs, val: string(b)}
}

// renderPath writes segments as a.b[0]["odd.key"].
func renderPath(segs []any) string {
	path := ""
	for _, s := range segs {
		switch x := s.(type) {
		case int:
			path = index(path, x)
		case string:
			path = pathKey(path, x)
		}
	}
	return path
}

func compareSegs(a, b []any) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ai, aInt := a[i].(int)
		bi, bInt := b[i].(int)
		switch {
		case aInt && bInt:
			if c := cmp.Compare(ai, bi); c != 0 {
				return c
			}
		case aInt != bInt:
			if aInt {
				return -1
			}
			return 1
		default:
			if c := cmp.Compare(a[i].(string), b[i].(string)); c != 0 {
				return c
			}
		}
	}
	return cmp.Compare(len(a), len(b))
}
