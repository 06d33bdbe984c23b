package process

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

// RepoRoot finds the root of the github.com/ebbflow/ebbflow module at or above the working
// directory.
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
			return "", errors.New("not inside the github.com/ebbflow/ebbflow module")
		}
		dir = parent
	}
}

// GoBuild runs `go build -o out pkgs...` in the module at root (go's build cache makes a second
// build cheap); a failure's error holds go's output, from its second line on.
func GoBuild(ctx context.Context, root, out string, pkgs ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", out}, pkgs...)...)
	cmd.Dir = root
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", strings.Join(pkgs, " "), root, err, strings.TrimRight(b.String(), "\n"))
	}
	return nil
}

// BuildController compiles ./cmd/fleet-controller of the module at root (empty: RepoRoot) into
// dir (empty: root's bin/) and returns the binary's path.
func BuildController(ctx context.Context, root, dir string) (string, error) {
	if root == "" {
		var err error
		if root, err = RepoRoot(); err != nil {
			return "", err
		}
	}
	if dir == "" {
		dir = filepath.Join(root, "bin")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "fleet-controller")
	if err := GoBuild(ctx, root, bin, "./cmd/fleet-controller"); err != nil {
		return "", err
	}
	return bin, nil
}

// AbsBinaries makes every non-empty path absolute and checks that it exists.
func AbsBinaries(paths ...*string) error {
	for _, p := range paths {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("binary: %w", err)
		}
		*p = abs
	}
	return nil
}
