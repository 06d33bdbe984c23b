package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		"./cmd/fleet-controller", "./cmd/fleet-agent", "./cmd/fleetctl", "./e2e/cmd/latency-target")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("go build: %w\n%s", err, out.String())
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
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/ebbflow/ebbflow\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("fleet: not inside the github.com/ebbflow/ebbflow module")
		}
		dir = parent
	}
}
