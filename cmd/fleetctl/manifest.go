package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/ebbflow/ebbflow/internal/protoyaml"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// The kinds a file may hold.
const (
	kindProfile = "Profile"
	kindRollout = "Rollout"
)

// maxSourceBytes bounds one -f source (a file or standard input).
const maxSourceBytes = 16 << 20

// manifest is one decoded document of a -f source: a profile or a rollout.
type manifest struct {
	pos  position
	kind string
	name string
	// Exactly one of these is set, by kind.
	profile *ebbflowv1.ProfileSpec
	rollout *ebbflowv1.RolloutSpec
}

// ref is the object's kubectl-style name: profile/eks, rollout/tune-eu.
func (m *manifest) ref() string { return strings.ToLower(m.kind) + "/" + m.name }

// position is where a document, or a key in it, is in its source.
type position struct {
	source string // the file's path, or "stdin"
	doc    int    // 1-based index of the document in its source
	line   int    // 1-based line in the source; 0 when unknown
	col    int
}

func (p position) String() string {
	s := p.source
	if p.line > 0 {
		s += ":" + strconv.Itoa(p.line)
		if p.col > 0 {
			s += ":" + strconv.Itoa(p.col)
		}
	}
	return fmt.Sprintf("%s: document %d", s, p.doc)
}

// fileError is a document fleetctl cannot read: where, and why.
type fileError struct {
	pos position
	err error
}

func (e *fileError) Error() string { return e.pos.String() + ": " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// fileErrors are every unreadable document of one invocation; nothing is sent when there is one.
type fileErrors []*fileError

func (es fileErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	if len(s) == 1 {
		return s[0]
	}
	return fmt.Sprintf("%d documents are not valid:\n  %s", len(s), strings.Join(s, "\n  "))
}

// readManifests reads every document of the -f sources, like kubectl: a file, a directory (its
// .yaml, .yml and .json files, in name order; with recursive its subdirectories too), or "-"
// for standard input, each with any number of documents separated by "---" lines. An empty
// document (nothing, or only comments) is skipped. Every document is checked before any is
// returned, and all the errors are reported together, each naming its file, document and line.
func (a *app) readManifests(sources []string, recursive bool) ([]*manifest, error) {
	if len(sources) == 0 {
		return nil, usageErr("-f FILE is required (a file, a directory, or - for standard input)")
	}
	var files []string
	for _, s := range sources {
		if s == "-" {
			files = append(files, s)
			continue
		}
		fi, err := os.Stat(s)
		if err != nil {
			return nil, usageErr("%v", err)
		}
		if !fi.IsDir() {
			files = append(files, s)
			continue
		}
		found, err := manifestFiles(s, recursive)
		if err != nil {
			return nil, usageErr("%v", err)
		}
		if len(found) == 0 {
			return nil, usageErr("%s: no .yaml, .yml or .json file in the directory%s", s, map[bool]string{false: " (-R for its subdirectories)", true: ""}[recursive])
		}
		files = append(files, found...)
	}
	var out []*manifest
	var errs fileErrors
	seen := map[string]position{}
	stdinRead := false
	for _, f := range files {
		var b []byte
		var err error
		name := f
		if f == "-" {
			if stdinRead {
				return nil, usageErr("-f -: standard input can be given once")
			}
			stdinRead, name = true, "stdin"
			b, err = io.ReadAll(io.LimitReader(a.in, maxSourceBytes+1))
		} else {
			b, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, usageErr("%v", err)
		}
		if len(b) > maxSourceBytes {
			return nil, usageErr("%s: larger than %d bytes", name, maxSourceBytes)
		}
		for _, d := range splitDocuments(b) {
			d.pos.source = name
			m, err := decodeDocument(d)
			if err != nil {
				var fe *fileError
				if !errors.As(err, &fe) {
					fe = &fileError{pos: d.pos, err: err}
				}
				errs = append(errs, fe)
				continue
			}
			if m == nil {
				continue
			}
			if prev, dup := seen[m.ref()]; dup && m.name != "" {
				errs = append(errs, &fileError{pos: m.pos, err: fmt.Errorf("%s is also in %s", m.ref(), prev)})
				continue
			}
			seen[m.ref()] = m.pos
			out = append(out, m)
		}
	}
	if len(errs) > 0 {
		return nil, &exitErr{code: exitUsage, err: errs}
	}
	if len(out) == 0 {
		return nil, usageErr("%s: no document to apply", strings.Join(sources, ", "))
	}
	return out, nil
}

// manifestFiles lists a directory's manifest files in name order.
func manifestFiles(dir string, recursive bool) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			out = append(out, p)
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// document is one "---"-separated document of a source, as bytes, with its first line.
type document struct {
	pos  position
	body []byte
}

// splitDocuments cuts a source at its "---" lines (a "---" followed by nothing or a comment),
// as kubectl's YAML reader does, keeping each document's first line for error positions.
func splitDocuments(b []byte) []document {
	var docs []document
	cur := document{pos: position{doc: 1, line: 1}}
	var buf bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxSourceBytes+1)
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if rest, ok := strings.CutPrefix(t, "---"); ok {
			if r := strings.TrimSpace(rest); r == "" || strings.HasPrefix(r, "#") {
				cur.body = slices.Clone(buf.Bytes())
				docs = append(docs, cur)
				buf.Reset()
				cur = document{pos: position{doc: cur.pos.doc + 1, line: line + 1}}
				continue
			}
		}
		buf.WriteString(t)
		buf.WriteByte('\n')
	}
	cur.body = slices.Clone(buf.Bytes())
	docs = append(docs, cur)
	// A leading "---" (after nothing but comments) opens the first document rather than ending
	// an empty one: number the documents as a reader counts them, skipping that one.
	if len(docs) > 1 && onlyComments(docs[0].body) {
		docs = docs[1:]
		for i := range docs {
			docs[i].pos.doc = i + 1
		}
	}
	return docs
}

func onlyComments(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// decodeDocument reads one document by its kind; nil for an empty document.
func decodeDocument(d document) (*manifest, error) {
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(d.body, &root); err != nil {
		return nil, &fileError{pos: d.pos, err: shiftYAMLError(err, d.pos.line)}
	}
	if len(root.Content) == 0 || (root.Content[0].Kind == yamlv3.ScalarNode && root.Content[0].Tag == "!!null") {
		return nil, nil
	}
	top := root.Content[0]
	if top.Kind != yamlv3.MappingNode {
		return nil, &fileError{pos: at(d.pos, top), err: errors.New("want a mapping with apiVersion, kind, metadata and spec")}
	}
	if err := duplicateKeys(top, d.pos, ""); err != nil {
		return nil, err
	}
	var head struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(d.body, &head); err != nil {
		return nil, &fileError{pos: d.pos, err: shiftYAMLError(err, d.pos.line)}
	}
	m := &manifest{pos: d.pos, kind: head.Kind}
	var err error
	switch head.Kind {
	case kindProfile:
		m.name, m.profile, err = profile.DecodeYAML(d.body)
	case kindRollout:
		m.name, m.rollout, err = decodeRolloutDoc(d.body)
	case "":
		return nil, &fileError{pos: at(d.pos, top), err: errors.New("kind: missing; want Profile or Rollout")}
	default:
		k, _ := findPath(top, "kind")
		return nil, &fileError{pos: at(d.pos, k), err: fmt.Errorf("kind: %q is not one fleetctl applies; want Profile or Rollout", head.Kind)}
	}
	if err != nil {
		var fe *profile.FieldError
		if errors.As(err, &fe) {
			if fe.Field == profile.FieldDocument {
				return nil, &fileError{pos: d.pos, err: errors.New(shiftLines(fe.Msg, d.pos.line))}
			}
			key, value := findPath(top, fe.Field)
			n := value
			// A complaint about the key itself points at the key; one about its value, at the value.
			if value == nil || strings.HasPrefix(fe.Msg, "unknown field") || strings.HasPrefix(fe.Msg, "set twice") ||
				strings.HasPrefix(fe.Msg, "repeated key") || value.Kind != yamlv3.ScalarNode {
				n = key
			}
			return nil, &fileError{pos: at(d.pos, n), err: err}
		}
		return nil, &fileError{pos: d.pos, err: err}
	}
	// A rollout may go without a name: rollout create has the controller make one up, and
	// apply, which needs it to tell whether the rollout exists, refuses it (applyRollout).
	if m.name == "" && m.kind == kindProfile {
		return nil, &fileError{pos: at(d.pos, top), err: errors.New("metadata.name: required")}
	}
	return m, nil
}

// at is the position of node n of the document at p (n's line counts from the document's).
func at(p position, n *yamlv3.Node) position {
	if n == nil {
		return p
	}
	p.line, p.col = p.line+n.Line-1, n.Column
	return p
}

// duplicateKeys refuses a key set twice in one mapping, naming its path and both lines.
func duplicateKeys(n *yamlv3.Node, p position, path string) error {
	switch n.Kind {
	case yamlv3.MappingNode:
		first := map[string]*yamlv3.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if prev, dup := first[k.Value]; dup && k.Kind == yamlv3.ScalarNode {
				return &fileError{pos: at(p, k), err: fmt.Errorf("%s: repeated key (first at line %d)", protoyaml.PathKey(path, k.Value), p.line+prev.Line-1)}
			}
			first[k.Value] = k
			if err := duplicateKeys(n.Content[i+1], p, protoyaml.PathKey(path, k.Value)); err != nil {
				return err
			}
		}
	case yamlv3.SequenceNode:
		for i, c := range n.Content {
			if err := duplicateKeys(c, p, protoyaml.Index(path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

var yamlLine = regexp.MustCompile(`\bline (\d+)`)

// shiftLines renumbers "line N" of a YAML parser's message from the document's lines to the
// source's.
func shiftLines(msg string, first int) string {
	return yamlLine.ReplaceAllStringFunc(msg, func(s string) string {
		n, err := strconv.Atoi(strings.TrimPrefix(s, "line "))
		if err != nil {
			return s
		}
		return "line " + strconv.Itoa(n+first-1)
	})
}

func shiftYAMLError(err error, first int) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	return errors.New("not valid YAML: " + shiftLines(strings.TrimPrefix(msg, "yaml: "), first))
}

// findPath finds the node a field path names (spec.automatic.gates.soakTime, spec.budgets[0],
// spec.values["a.b"]): its key (the list entry itself for an index) and its value; when the path
// leads nowhere, the deepest key on the way to it and a nil value. A key matches its camelCase or
// snake_case spelling.
func findPath(top *yamlv3.Node, path string) (key, value *yamlv3.Node) {
	n, key := top, top
	for _, seg := range splitPath(path) {
		switch {
		case n.Kind == yamlv3.SequenceNode && seg.index >= 0:
			if seg.index >= len(n.Content) {
				return key, nil
			}
			n = n.Content[seg.index]
			key = n
		case n.Kind == yamlv3.MappingNode && seg.index < 0:
			var next *yamlv3.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if sameKey(n.Content[i].Value, seg.key) {
					key, next = n.Content[i], n.Content[i+1]
				}
			}
			if next == nil {
				return key, nil
			}
			n = next
		default:
			return key, nil
		}
	}
	return key, n
}

func sameKey(a, b string) bool {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	return a == b || norm(a) == norm(b)
}

type pathSeg struct {
	key   string
	index int // -1 for a key
}

// splitPath reads a field path as profile.FieldError and the rollout decoder write it.
func splitPath(path string) []pathSeg {
	var out []pathSeg
	for i := 0; i < len(path); {
		switch path[i] {
		case '.':
			i++
		case '[':
			end := strings.IndexByte(path[i:], ']')
			if i+1 < len(path) && path[i+1] == '"' {
				// A quoted key: find its closing quote, then the bracket.
				j := i + 2
				for j < len(path) && path[j] != '"' {
					if path[j] == '\\' {
						j++
					}
					j++
				}
				k, err := strconv.Unquote(path[i+1 : min(j+1, len(path))])
				if err != nil {
					return out
				}
				out = append(out, pathSeg{key: k, index: -1})
				i = j + 2
				continue
			}
			if end < 0 {
				return out
			}
			n, err := strconv.Atoi(path[i+1 : i+end])
			if err != nil {
				return out
			}
			out = append(out, pathSeg{index: n})
			i += end + 1
		default:
			j := i
			for j < len(path) && path[j] != '.' && path[j] != '[' {
				j++
			}
			out = append(out, pathSeg{key: path[i:j], index: -1})
			i = j
		}
	}
	return out
}
