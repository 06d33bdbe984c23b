package probe

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// A target named by its in-cluster name is reached at the address --resolve gives.
func TestResolvingDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: DelayHandler(func() time.Duration { return 0 })}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	m, err := ParseResolve([]string{"echo.perf.svc:8080=" + ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), &ebbflowv1.ProbeSpec{
		Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo.perf.svc:8080/", Rate: 100, Duration: durationpb.New(200 * time.Millisecond),
	}, Options{Windows: 1, Dialer: ResolvingDialer{Map: m}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count == 0 || res.Errors != 0 {
		t.Fatalf("count %d errors %d", res.Count, res.Errors)
	}
	for _, bad := range []string{"nohostport", "a:1=b", "=b:2"} {
		if _, err := ParseResolve([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
