package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/ebbflow/ebbflow/controller/controllertest"
)

// Faults a faultProxy injects into one call.
const (
	// faultAnswerLost: the call reaches the controller and takes effect; its answer is replaced
	// by UNKNOWN, as when the leader changes while the write commits.
	faultAnswerLost = "applied-answer-lost"
	// faultNotApplied: the call never reaches the controller; the caller gets UNKNOWN.
	faultNotApplied = "not-applied"
)

// faultProxy stands in front of a real controller and passes every call through, except the
// next call of procedure after inject, which meets the fault once.
type faultProxy struct {
	URL string

	mu     sync.Mutex
	fault  string
	before func() // runs before the faulted call is passed on, for faults of its own kind
}

func newFaultProxy(t *testing.T, controllerURL, procedure string) *faultProxy {
	t.Helper()
	target, err := url.Parse(controllerURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = controllertest.HTTPClient().Transport
	p := &faultProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		fault, before := "", func() {}
		if r.URL.Path == procedure {
			fault, before = p.fault, p.before
			p.fault, p.before = "", nil
		}
		p.mu.Unlock()
		switch fault {
		case "":
			proxy.ServeHTTP(w, r)
			return
		case faultAnswerLost:
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				t.Errorf("the call the proxy let through: HTTP %d %s", rec.Code, rec.Body)
			}
		case faultNotApplied:
		default:
			before()
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"code":"unknown","message":"outcome unknown: the leader changed while the write committed (injected)"}`)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// inject makes the next call of the proxy's procedure meet fault; for a fault other than the
// two above, before runs first and the call then passes through.
func (p *faultProxy) inject(fault string, before func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.before = fault, before
}
