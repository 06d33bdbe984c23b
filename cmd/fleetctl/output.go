package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"
)

var marshal = protojson.MarshalOptions{Multiline: true, Indent: "  "}

// printMsg prints m as JSON or YAML; for table output it calls table.
//
// An empty list (a List response whose one list is empty) prints "No profiles found." on stderr
// instead of a lone table header, and its list as [] in JSON and YAML instead of leaving it out,
// as kubectl does.
func (a *app) printMsg(m proto.Message, table func(w io.Writer)) error {
	opts := marshal
	if f := emptyList(m); f != nil {
		if a.output == "table" {
			_, err := fmt.Fprintf(a.errOut, "No %s found.\n", strings.ReplaceAll(string(f.Name()), "_", " "))
			return err
		}
		opts.EmitUnpopulated = true
	}
	switch a.output {
	case "json":
		b, err := opts.Marshal(m)
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
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
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

// age prints how long ago t was, like kubectl.
func age(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	d := time.Since(t.AsTime())
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
