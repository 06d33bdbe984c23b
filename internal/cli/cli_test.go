package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func command(out *bytes.Buffer, run func() error) *cobra.Command {
	cmd := &cobra.Command{Use: "daemon", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return run() }}
	cmd.Flags().Duration("wait", 0, "a duration")
	cmd.SetOut(out)
	cmd.SetErr(out)
	return cmd
}

// Scripts can trust the exit code: 0 for success and --version, 2 for a usage error (with the
// flag named), 1 for a failure; errors go to stderr as "<name>: <error>".
func TestExitCodes(t *testing.T) {
	ok := func() error { return nil }
	for _, tt := range []struct {
		name string
		args []string
		run  func() error
		code int
		out  string
	}{
		{"runs", nil, ok, OK, ""},
		{"version", []string{"--version"}, ok, OK, "\n"},
		{"unknown flag", []string{"--nope"}, ok, Usage, "unknown flag: --nope"},
		{"bad value", []string{"--wait", "soon"}, ok, Usage, `invalid argument "soon" for "--wait"`},
		{"argument", []string{"extra"}, ok, Usage, `unknown command "extra"`},
		{"failure", nil, func() error { return errors.New("disk full") }, Fail, "daemon: disk full"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := ExecuteArgs(command(&out, tt.run), tt.args); code != tt.code {
				t.Errorf("exit %d, want %d; output %q", code, tt.code, out.String())
			}
			if !strings.Contains(out.String(), tt.out) {
				t.Errorf("output %q does not contain %q", out.String(), tt.out)
			}
		})
	}
}
