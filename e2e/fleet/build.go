package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ebbflow/ebbflow/e2e/process"
)

// Binaries are the paths of the project's executables the fleet runs.
type Binaries struct {
	Controller, Agent, Fleetctl, LatencyTarget string
}

// Build compiles fleet-controller, fleet-agent, fleetctl and latency-target from the module at
// root into dir (go's build cache makes a second build cheap).
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, err
	}
	err := process.GoBuild(ctx, root, dir+string(filepath.Separator),
		"./cmd/fleet-controller", "./cmd/fleet-agent", "./cmd/fleetctl", "./e2e/cmd/latency-target")
	if err != nil {
		return Binaries{}, err
	}
	return Binaries{
		Controller:    filepath.Join(dir, "fleet-controller"),
		Agent:         filepath.Join(dir, "fleet-agent"),
		Fleetctl:      filepath.Join(dir, "fleetctl"),
		LatencyTarget: filepath.Join(dir, "latency-target"),
	}, nil
}

// RepoRoot finds the project's module root at or above the working directory.
func RepoRoot() (string, error) {
	root, err := process.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("fleet: %w", err)
	}
	return root, nil
}
