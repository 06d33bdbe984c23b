package controller_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
)

// A configured portal origin gets preflights answered and its responses readable; another
// origin gets no CORS headers (the browser blocks it); without origins nothing changes.
func TestCORSForConfiguredOrigins(t *testing.T) {
	const portal = "https://portal.example.com"
	n := controllertest.Start(t, controllertest.Options{Config: func(cfg *controller.Config) { cfg.CORSOrigins = []string{portal} }})
	preflight := func(url, origin string) (int, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, url+"/ebbflow.v1.ProfileService/ListProfiles", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		// Browsers send the list sorted and lower-case.
		req.Header.Set("Access-Control-Request-Headers", "authorization,connect-protocol-version,content-type")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, res.Header
	}
	code, h := preflight(n.URL, portal)
	if code/100 != 2 || h.Get("Access-Control-Allow-Origin") != portal ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight from the portal: %d %v", code, h)
	}
	if _, h := preflight(n.URL, "https://evil.example.com"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin allowed: %v", h)
	}

	req, _ := http.NewRequest(http.MethodPost, n.URL+"/ebbflow.v1.ProfileService/ListProfiles", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", portal)
	post, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusOK || post.Header.Get("Access-Control-Allow-Origin") != portal {
		t.Fatalf("a call from the portal: %d %v", post.StatusCode, post.Header)
	}

	plain := controllertest.Start(t, controllertest.Options{})
	if code, h := preflight(plain.URL, portal); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a node without --cors-origin answered a preflight: %d %v", code, h)
	}
}

func TestCORSOriginsAreChecked(t *testing.T) {
	for _, o := range []string{"https://portal.example.com", "http://localhost:3000"} {
		if err := controller.CheckCORSOrigins([]string{o}); err != nil {
			t.Errorf("%s: %v", o, err)
		}
	}
	for _, o := range []string{"*", "portal.example.com", "https://portal.example.com/", "https://p.example.com/app", "ftp://p.example.com", "https://*.example.com"} {
		if err := controller.CheckCORSOrigins([]string{o}); err == nil {
			t.Errorf("%s accepted", o)
		}
	}
}
