package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commandPaths are the paths of every command of fleetctl, the root first.
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	out := [][]string{prefix}
	for _, sub := range c.Commands() {
		out = append(out, commandPaths(sub, append(append([]string(nil), prefix...), sub.Name()))...)
	}
	return out
}

// Every command: --help prints its usage and exits 0; a typo (an unknown subcommand of a group,
// an unknown flag of any command) exits 2 naming it. No controller is needed for either: the
// server given does not exist.
func TestEveryCommandHelpAndTypo(t *testing.T) {
	root := (&app{}).rootCmd()
	paths := commandPaths(root, nil)
	if len(paths) < 50 {
		t.Fatalf("only %d commands found", len(paths))
	}
	for _, path := range paths {
		name := strings.Join(append([]string{"fleetctl"}, path...), " ")
		t.Run(name, func(t *testing.T) {
			code, out, errOut := fleetctl(t, "http://127.0.0.1:1", "", append(path, "--help")...)
			if code != exitOK || !strings.Contains(out, "Usage:") {
				t.Errorf("%s --help: exit %d, stdout %q, stderr %q", name, code, out, errOut)
			}
			code, _, errOut = fleetctl(t, "http://127.0.0.1:1", "", append(path, "--bogus")...)
			if code != exitUsage || !strings.Contains(errOut, "unknown flag: --bogus") {
				t.Errorf("%s --bogus: exit %d, %q; want %d", name, code, errOut, exitUsage)
			}
			c, _, err := root.Find(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.HasSubCommands() {
				code, _, errOut = fleetctl(t, "http://127.0.0.1:1", "", append(path, "bogus")...)
				if code != exitUsage || !strings.Contains(errOut, `unknown command "bogus"`) {
					t.Errorf("%s bogus: exit %d, %q; want %d", name, code, errOut, exitUsage)
				}
			}
		})
	}
}

// The exit-code table of fleetctl --help names every code fleetctl returns.
func TestExitCodeTableIsDocumented(t *testing.T) {
	long := (&app{}).rootCmd().Long
	for _, c := range []struct {
		code int
		says string
	}{
		{exitOK, "ok"}, {exitError, "error"}, {exitUsage, "invalid input"}, {exitNotFound, "not found"},
		{exitConflict, "conflict"}, {exitUnavailable, "controller unavailable"}, {exitUnimplemented, "not offered"},
		{exitRolloutFailed, "rollout failed"}, {exitRolloutAborted, "rollout aborted"},
		{exitPermissionError, "permission denied"}, {exitWatchTimeout, "rollout status --watch --timeout passed"},
	} {
		if !strings.Contains(strings.Join(strings.Fields(long), " "), fmt.Sprintf("%d %s", c.code, c.says)) {
			t.Errorf("fleetctl --help does not document exit %d (%s):\n%s", c.code, c.says, long)
		}
	}
}
