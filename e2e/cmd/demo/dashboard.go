package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ebbflow/ebbflow/internal/headless"
)

// screenshots opens the dashboard at base in headless Chromium as the admin, follows the demo's
// rollout until eu-2's regression shows, and saves two pictures into dir: the rollout page
// (dashboard-rollout.png) and eu-2's latency plot (dashboard-latency.png). It is what the
// README's pictures come from (make demo DEMO_FLAGS=--screenshots=docs). Errors are printed,
// not fatal: the pictures are a by-product of the demo.
func screenshots(ctx context.Context, base, tokenFile, dir string) {
	if err := takeScreenshots(ctx, base, tokenFile, dir); err != nil {
		fmt.Printf("(dashboard screenshots: %v)\n", err)
	}
}

func takeScreenshots(ctx context.Context, base, tokenFile, dir string) error {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("no chromium on the PATH (make chromium installs Debian's)")
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	profile, err := os.MkdirTemp("", "ebbflow-demo-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	actx, acancel := chromedp.NewExecAllocator(ctx, headless.Allocator(bin, profile, 860)...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := headless.SignIn(bctx, base, strings.TrimSpace(string(tok))); err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	wait := func(what, cond string) error {
		if err := headless.Wait(bctx, cond, 200*time.Millisecond, 15*time.Minute); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	shot := func(name string) error {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			return err
		}
		path := filepath.Join(dir, name)
		fmt.Printf("(dashboard: saved %s)\n", path)
		return os.WriteFile(path, png, 0o644)
	}
	if err := wait("signed in", `(document.querySelector('[data-testid=whoami]')?.textContent ?? "") !== ""`); err != nil {
		return err
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#/rollouts/demo"`)); err != nil {
		return err
	}
	if err := wait("eu-2's regression on the rollout page", `document.querySelector('[data-cluster="eu-2"]')?.dataset.verdict === "regression"`); err != nil {
		return err
	}
	if err := shot("dashboard-rollout.png"); err != nil {
		return err
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#/rollouts/demo/clusters/eu-2"`)); err != nil {
		return err
	}
	if err := wait("eu-2's latency plot", `(document.querySelector('[data-testid=latency-plot]')?.dataset.series ?? "").includes('"kpr')`); err != nil {
		return err
	}
	return shot("dashboard-latency.png")
}
