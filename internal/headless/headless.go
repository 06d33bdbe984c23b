// Package headless drives the dashboard in a headless Chromium (Debian's, over the DevTools
// protocol with chromedp): the browser's flags for a closed, loopback-only machine, signing in
// with a token, and waiting for a condition in the page. The dashboard's browser tests and the
// demo's screenshots share it.
package headless

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/chromedp"
)

// Allocator returns options that start bin headless with its profile in dir: no sandbox (the
// tests run as root), no GPU, no background traffic (the machine has no network but loopback),
// a 1280-pixel-wide window, and the controller's certificate accepted (it comes from the
// fleet's own CA, which the browser does not know).
func Allocator(bin, dir string, height int) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(dir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("ignore-certificate-errors", true),
	}
}

// SignIn opens the dashboard of the controller at base in the tab and submits token on its
// sign-in form.
func SignIn(ctx context.Context, base, token string) error {
	return chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin")),
	)
}

// Wait evaluates the JavaScript condition in the tab every interval until it is true, for at
// most timeout. It evaluates through the DevTools protocol, which the page's
// Content-Security-Policy does not apply to (chromedp's Poll compiles its predicate with new
// Function in the page, which the dashboard's policy forbids).
func Wait(ctx context.Context, cond string, interval, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+cond+")"))
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not true within %s: %s", timeout, cond)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
