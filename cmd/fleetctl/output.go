package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

var marshal = protojson.MarshalOptions{Multiline: true, Indent: "  "}

// outputFormats are the values of -o; jsonpath takes a template: -o jsonpath='{.name}'.
var outputFormats = []string{"table", "wide", "json", "yaml", "name", "jsonpath="}

// outputKind is -o without its template: table, wide, json, yaml, name or jsonpath.
func (a *app) outputKind() string {
	k, _, _ := strings.Cut(a.output, "=")
	return k
}

// isTable says whether -o is a table (table or wide).
func (a *app) isTable() bool { return a.outputKind() == "table" || a.outputKind() == "wide" }

// checkOutput refuses an -o fleetctl does not offer, and a jsonpath template that does not parse.
func (a *app) checkOutput() error {
	switch a.outputKind() {
	case "table", "wide", "json", "yaml", "name":
		if strings.Contains(a.output, "=") {
			return usageErr("--output %s takes no template", a.outputKind())
		}
		return nil
	case "jsonpath":
		_, tmpl, _ := strings.Cut(a.output, "=")
		if tmpl == "" {
			return usageErr("--output jsonpath: give a template, e.g. -o jsonpath='{.name}'")
		}
		if err := jsonpath.New("o").AllowMissingKeys(true).Parse(tmpl); err != nil {
			return usageErr("--output jsonpath: %v", err)
		}
		return nil
	}
	return usageErr("--output: want table, wide, json, yaml, name or jsonpath=TEMPLATE, got %q", a.output)
}

// table is what a table function writes to: the tab-aligned output, knowing whether headers are
// wanted (--no-headers) and whether the table is wide (-o wide).
type table struct {
	*tabwriter.Writer
	noHeaders, wide bool
}

// header writes a table's header row unless --no-headers.
func header(w io.Writer, cells ...any) {
	if t, ok := w.(*table); ok && t.noHeaders {
		return
	}
	row(w, cells...)
}

// wide says whether the table should add its -o wide columns.
func wide(w io.Writer) bool {
	t, ok := w.(*table)
	return ok && t.wide
}

// printMsg prints m as -o asks: JSON, YAML, a jsonpath template, the names of its objects, or,
// for table and wide, what table writes (a message without a table prints as YAML).
//
// An empty list (a List response whose one list is empty) prints "No profiles found." on stderr
// instead of a lone table header, and its list as [] in JSON and YAML instead of leaving it out,
// as kubectl does.
func (a *app) printMsg(m proto.Message, tbl func(w io.Writer)) error {
	opts := marshal
	kind := a.outputKind()
	if f := emptyList(m); f != nil {
		if kind == "table" || kind == "wide" || kind == "name" {
			_, err := fmt.Fprintf(a.errOut, "No %s found.\n", strings.ReplaceAll(string(f.Name()), "_", " "))
			return err
		}
		opts.EmitUnpopulated = true
	}
	switch kind {
	case "json":
		b, err := stableJSON(opts, m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(a.out, string(b))
		return err
	case "yaml":
		b, err := toYAML(m, opts.EmitUnpopulated)
		if err != nil {
			return err
		}
		_, err = a.out.Write(b)
		return err
	case "jsonpath":
		return a.printJSONPath(m, opts.EmitUnpopulated)
	case "name":
		names := objectNames(m)
		if names == nil {
			return usageErr("-o name: this command's output has no named objects; use -o yaml")
		}
		for _, n := range names {
			fmt.Fprintln(a.out, n)
		}
		return nil
	}
	if tbl == nil {
		b, err := toYAML(m, false)
		if err != nil {
			return err
		}
		_, err = a.out.Write(b)
		return err
	}
	tw := &table{Writer: tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0), noHeaders: a.noHeaders, wide: kind == "wide"}
	tbl(tw)
	return tw.Flush()
}

// stableJSON is protojson's output indented by encoding/json: protojson varies its whitespace
// from build to build on purpose, and scripts and golden files want the same bytes each time.
func stableJSON(opts protojson.MarshalOptions, m proto.Message) ([]byte, error) {
	opts.Multiline, opts.Indent = false, ""
	b, err := opts.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// printJSONPath runs -o jsonpath's template over m's JSON form (protojson field names).
func (a *app) printJSONPath(m proto.Message, emitUnpopulated bool) error {
	_, tmpl, _ := strings.Cut(a.output, "=")
	b, err := protojson.MarshalOptions{EmitUnpopulated: emitUnpopulated}.Marshal(m)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	jp := jsonpath.New("o").AllowMissingKeys(true)
	if err := jp.Parse(tmpl); err != nil {
		return usageErr("--output jsonpath: %v", err)
	}
	if err := jp.Execute(a.out, v); err != nil {
		return usageErr("--output jsonpath: %v", err)
	}
	_, err = fmt.Fprintln(a.out)
	return err
}

// objectNames are kind/name of the profiles, clusters and rollouts m is or lists; nil when m
// holds none of them.
func objectNames(m proto.Message) []string {
	switch x := m.(type) {
	case *ebbflowv1.Profile:
		return []string{"profile/" + x.GetName()}
	case *ebbflowv1.Cluster:
		return []string{"cluster/" + x.GetName()}
	case *ebbflowv1.Rollout:
		return []string{"rollout/" + x.GetId()}
	case *ebbflowv1.ListProfilesResponse:
		return namesOf(x.GetProfiles(), func(p *ebbflowv1.Profile) string { return "profile/" + p.GetName() })
	case *ebbflowv1.ListProfileRevisionsResponse:
		return namesOf(x.GetRevisions(), func(p *ebbflowv1.Profile) string {
			return fmt.Sprintf("profile/%s@%d", p.GetName(), p.GetRevision())
		})
	case *ebbflowv1.ListClustersResponse:
		return namesOf(x.GetClusters(), func(c *ebbflowv1.Cluster) string { return "cluster/" + c.GetName() })
	case *ebbflowv1.ListRolloutsResponse:
		return namesOf(x.GetRollouts(), func(r *ebbflowv1.Rollout) string { return "rollout/" + r.GetId() })
	}
	return nil
}

func namesOf[T any](xs []T, name func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = name(x)
	}
	return out
}

// emptyList is the list field of m when m is a List...Response with nothing in it, else nil.
func emptyList(m proto.Message) protoreflect.FieldDescriptor {
	r := m.ProtoReflect()
	d := r.Descriptor()
	if !strings.HasPrefix(string(d.Name()), "List") || !strings.HasSuffix(string(d.Name()), "Response") {
		return nil
	}
	var list protoreflect.FieldDescriptor
	for i := range d.Fields().Len() {
		if f := d.Fields().Get(i); f.IsList() && f.Kind() == protoreflect.MessageKind {
			if list != nil {
				return nil
			}
			list = f
		}
	}
	if list == nil || r.Get(list).List().Len() > 0 {
		return nil
	}
	return list
}

func toYAML(m proto.Message, emitUnpopulated bool) ([]byte, error) {
	j, err := protojson.MarshalOptions{EmitUnpopulated: emitUnpopulated}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// row writes tab-separated cells.
func row(w io.Writer, cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(s, "\t"))
}

// now is the clock ages are measured against; tests fix it.
var now = time.Now

// age prints how long ago t was, like kubectl.
func age(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	d := now().Sub(t.AsTime())
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// enumName strips an enum's type prefix: ROLLOUT_STATE_RUNNING -> running.
func enumName(s, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(s, prefix))
}
