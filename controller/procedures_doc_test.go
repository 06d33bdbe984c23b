package controller_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/controller"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite the README's access table from the procedure table")

const (
	accessTableBegin = "<!-- access table: generated from controller/procedures.go by `go test ./controller -run TestREADMEAccessTable -update-readme` -->\n"
	accessTableEnd   = "<!-- end of access table -->\n"
)

// accessTable renders the procedure table as the README shows it.
func accessTable() string {
	var b strings.Builder
	b.WriteString("| RPC | Who may call it | Runs on | Audited |\n|---|---|---|---|\n")
	for _, p := range controller.Procedures() {
		audited := "no"
		if p.Audited {
			audited = "yes"
		}
		b.WriteString("| `" + strings.TrimPrefix(p.Procedure, "/ebbflow.v1.") + "` | " + p.Access + " | " + p.Runs + " | " + audited + " |\n")
	}
	return b.String()
}

// The README's access table is the procedure table: a change to who may call an RPC, where it
// runs or whether it is audited shows up in the documentation or fails here.
func TestREADMEAccessTable(t *testing.T) {
	const path = "../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, accessTableBegin), strings.Index(s, accessTableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no access table between %q and %q", path, accessTableBegin, accessTableEnd)
	}
	got, want := s[i+len(accessTableBegin):j], accessTable()
	if got == want {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(path, []byte(s[:i+len(accessTableBegin)]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the README's access table differs from the procedure table; run go test ./controller -run TestREADMEAccessTable -update-readme\nwant:\n%s", want)
}
