package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ebbflow/ebbflow/internal/headless"
)

// browser starts a headless Chromium for one test and returns a context for its first tab.
// EBBFLOW_BROWSER names the binary (make test sets it, after installing Debian's chromium,
// and then a missing browser fails the test); without it the test looks for chromium on the
// PATH and is skipped when there is none.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("EBBFLOW_BROWSER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("chromium"); err != nil {
			t.Skip("no chromium on the PATH and EBBFLOW_BROWSER unset (make test installs Debian's chromium)")
		}
	} else if _, err := os.Stat(bin); err != nil {
		t.Fatalf("EBBFLOW_BROWSER=%s: %v", bin, err)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), headless.Allocator(bin, t.TempDir(), 800)...)
	t.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	return ctx
}

// tab opens another tab of the same browser: its own session storage, so its own sign-in.
func tab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// watchCSP makes every page of the tab record Content-Security-Policy violations in
// window.__csp (installed by the browser before any of the page's scripts run).
func watchCSP(t *testing.T, ctx context.Context) {
	t.Helper()
	run(t, ctx, "watch CSP violations", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = []; document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`,
		})
		return chromedp.Void{}, err
	})
}

// run runs actions in the tab, failing the test with what on error.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the tab (through the DevTools protocol, which the
// page's Content-Security-Policy does not apply to).
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript condition in the page every 50 ms until it holds, for at most a
// minute.
func waitJS(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	if err := headless.Wait(ctx, cond, 50*time.Millisecond, time.Minute); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// signIn opens the dashboard at base and signs in with token.
func signIn(t *testing.T, ctx context.Context, base, token, want string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := headless.SignIn(sctx, base, token); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if want == "" { // anyone: authentication is off
		waitJS(t, ctx, "who am I", `(document.querySelector('[data-testid=whoami]')?.textContent ?? "") !== ""`)
		return
	}
	waitJS(t, ctx, "who am I", fmt.Sprintf(`(document.querySelector('[data-testid=whoami]')?.textContent ?? "") === %q`, want))
}

// goTo changes the page's route (the fragment), as a click on a link does.
func goTo(t *testing.T, ctx context.Context, route string) {
	t.Helper()
	eval[chromedp.Void](t, ctx, fmt.Sprintf(`location.hash = %q`, route))
}

// attr is the selector's element's attribute, "" when absent.
func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q)?.getAttribute(%q) ?? ""`, sel, name))
}

// series is one line of the latency plot, as the page plots it.
type series struct {
	Label  string       `json:"label"`
	Points [][2]float64 `json:"points"`
}

func plotted(t *testing.T, ctx context.Context) []series {
	t.Helper()
	raw := attr(t, ctx, "[data-testid=latency-plot]", "data-series")
	var out []series
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("data-series %q: %v", raw, err)
	}
	return out
}

// at is the series' latency at quantile q.
func (s series) at(q float64) float64 {
	for _, p := range s.Points {
		if p[0] == q {
			return p[1]
		}
	}
	return -1
}

func noCSPViolations(t *testing.T, ctx context.Context) {
	t.Helper()
	if v := eval[[]string](t, ctx, `window.__csp ?? []`); len(v) > 0 {
		t.Errorf("Content-Security-Policy violations: %s", strings.Join(v, "; "))
	}
}

// screenshot saves the tab's viewport as name.png under $EBBFLOW_SCREENSHOTS when that is set
// (make screenshots; the README's pictures come from there).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("EBBFLOW_SCREENSHOTS")
	if dir == "" {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// reach waits for an agent held by the test to report that it reached its hold, for at most
// two minutes.
func reach(t *testing.T, reached <-chan string, what string) {
	t.Helper()
	select {
	case <-reached:
	case <-time.After(2 * time.Minute):
		t.Fatalf("waited two minutes for %s", what)
	}
}
