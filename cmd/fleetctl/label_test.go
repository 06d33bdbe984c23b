package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// A label write whose answer is UNKNOWN (the leader changed while it committed: applied or
// not) or ABORTED (another change came first) is not the command's answer: `cluster label`
// reads the cluster again and finishes the job, never applying its change twice and never
// overwriting the other change. The faults come from a proxy in front of a real controller.
func TestClusterLabelFinishesAfterUnknownOrConflict(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	direct := ebbflowv1connect.NewClusterServiceClient(controllertest.HTTPClient(), n.URL)
	get := func() *ebbflowv1.Cluster {
		t.Helper()
		res, err := direct.GetCluster(context.Background(), connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "eu-1"}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetCluster()
	}
	mustRun(t, n.URL, "cluster", "register", "eu-1", "-l", "env=prod")

	target, err := url.Parse(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = controllertest.HTTPClient().Transport
	var fault atomic.Value // the fault the next SetClusterLabels meets, once
	fault.Store("")
	lost := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"code":"unknown","message":"outcome unknown: the leader changed while the write committed (injected)"}`)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ebbflowv1connect.ClusterServiceSetClusterLabelsProcedure {
			proxy.ServeHTTP(w, r)
			return
		}
		switch fault.Swap("") {
		case "applied-answer-lost": // the write commits; its answer never arrives
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				t.Errorf("the write the proxy let through: HTTP %d %s", rec.Code, rec.Body)
			}
			lost(w)
		case "not-applied": // the write is lost before the leader proposes it
			lost(w)
		case "someone-else-first": // another change lands between the command's read and write
			c := get()
			labels := map[string]string{"owner": "team-b"}
			for k, v := range c.GetLabels() {
				labels[k] = v
			}
			if _, err := direct.SetClusterLabels(r.Context(), connect.NewRequest(&ebbflowv1.SetClusterLabelsRequest{
				Name: "eu-1", Labels: labels, ExpectedGeneration: c.GetGeneration(),
			})); err != nil {
				t.Errorf("the other change: %v", err)
			}
			proxy.ServeHTTP(w, r)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()

	for _, tc := range []struct {
		fault, label string
		writes       uint64 // generations the command adds
		say          string
		want         string // the labels after
	}{
		{"applied-answer-lost", "tier=gold", 1, "already has the labels", "env=prod,tier=gold"},
		{"not-applied", "zone=a", 1, "reading it again", "env=prod,tier=gold,zone=a"},
		{"someone-else-first", "tier=silver", 2, "aborted", "env=prod,owner=team-b,tier=silver,zone=a"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			before := get().GetGeneration()
			fault.Store(tc.fault)
			code, out, errOut := fleetctl(t, srv.URL, "", "cluster", "label", "eu-1", tc.label)
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if !strings.Contains(out, "labels: "+tc.want) {
				t.Errorf("stdout %q, want labels: %s", out, tc.want)
			}
			if !strings.Contains(errOut, tc.say) {
				t.Errorf("stderr %q does not say %q", errOut, tc.say)
			}
			after := get()
			if got := labelString(after.GetLabels()); got != tc.want {
				t.Errorf("stored labels %s, want %s", got, tc.want)
			}
			if got := after.GetGeneration() - before; got != tc.writes {
				t.Errorf("%d writes applied, want %d", got, tc.writes)
			}
		})
	}
}
