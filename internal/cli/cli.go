// Package cli runs the daemons' command lines (fleet-controller, fleet-agent) with the same
// library and conventions as fleetctl (cobra): --help, --version, and exit codes scripts can
// trust (0 success, 1 failure, 2 usage error).
package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/internal/buildinfo"
)

// Exit codes.
const (
	OK    = 0
	Fail  = 1
	Usage = 2
)

type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// Execute runs cmd with os.Args, printing an error as "<name>: <error>" on stderr, and returns
// the exit code. It adds --version (the build's version) and marks flag and argument errors
// as usage errors.
func Execute(cmd *cobra.Command) int {
	return ExecuteArgs(cmd, os.Args[1:])
}

// ExecuteArgs is Execute with the arguments given.
func ExecuteArgs(cmd *cobra.Command, args []string) int {
	cmd.Version = buildinfo.Version()
	cmd.SetVersionTemplate("{{.Version}}\n")
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	if cmd.Args != nil {
		check := cmd.Args
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return OK
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", cmd.Name(), err)
	if errors.As(err, new(usageError)) {
		return Usage
	}
	return Fail
}
