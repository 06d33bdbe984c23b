package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/controller/ui"
)

// answer is a response, read.
type answer struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

func get(t *testing.T, h http.Handler, method, path string, header ...string) answer {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{StatusCode: res.StatusCode, Header: res.Header, Body: body}
}

// Every answer carries the policy; the page, its script and its style come with their types;
// unknown paths get the page (the app routes by fragment); /ui redirects; only GET and HEAD.
func TestHandler(t *testing.T) {
	h := ui.Handler()
	for path, typ := range map[string]string{"/ui/": "text/html", "/ui/app.js": "text/javascript", "/ui/app.css": "text/css", "/ui/rollouts/x": "text/html"} {
		res := get(t, h, http.MethodGet, path)
		body := res.Body
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), typ) || len(body) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes", path, res.StatusCode, res.Header.Get("Content-Type"), len(body))
		}
		if csp := res.Header.Get("Content-Security-Policy"); csp != ui.ContentSecurityPolicy || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: policy %q", path, csp)
		}
		if res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", path, res.Header)
		}
		etag := res.Header.Get("ETag")
		if again := get(t, h, http.MethodGet, path, "If-None-Match", etag); etag == "" || again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag %q: %d", path, etag, again.StatusCode)
		}
	}
	if res := get(t, h, http.MethodGet, "/ui"); res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := get(t, h, http.MethodPost, "/ui/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %d", res.StatusCode)
	}
	// The page itself has no inline script or style and loads nothing from elsewhere.
	page := string(get(t, h, http.MethodGet, "/ui/").Body)
	if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>|<style|\sstyle=|\son[a-z]+=`).MatchString(page) {
		t.Errorf("inline script or style in the page:\n%s", page)
	}
	for _, src := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if strings.Contains(src[1], "//") || strings.HasPrefix(src[1], "/") {
			t.Errorf("the page loads %q, not a file beside it", src[1])
		}
	}
}
