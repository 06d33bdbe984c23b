package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

const (
	kindHTTP       = ebbflowv1.ProbeKind_PROBE_KIND_HTTP
	kindRR         = ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR
	kindCRR        = ebbflowv1.ProbeKind_PROBE_KIND_TCP_CRR
	kindThroughput = ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT
	kindProm       = ebbflowv1.ProbeKind_PROBE_KIND_PROMETHEUS
)

func newSpec(kind ebbflowv1.ProbeKind, target string, rate float64, d time.Duration) *ebbflowv1.ProbeSpec {
	return &ebbflowv1.ProbeSpec{Kind: kind, Target: target, Rate: rate, Duration: durationpb.New(d)}
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

func listen(t testing.TB) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &countingListener{Listener: ln}
}

// startServer runs serveFn on a fresh 127.0.0.1 listener until the test ends, then checks
// that it returned nil once the listener was closed.
func startServer(t testing.TB, serveFn func(net.Listener) error) *countingListener {
	t.Helper()
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- serveFn(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("server returned %v after its listener was closed", err)
		}
	})
	return ln
}

func startEcho(t testing.TB, respSize int, delay func() time.Duration) *countingListener {
	return startServer(t, func(ln net.Listener) error { return ServeEcho(ln, respSize, delay) })
}

func startHTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func mustRun(t testing.TB, spec *ebbflowv1.ProbeSpec, opts Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), spec, opts)
	if err != nil {
		t.Fatalf("Run(%v): %v", spec, err)
	}
	return res
}

func runErr(t testing.TB, spec *ebbflowv1.ProbeSpec, opts Options, want error) *Result {
	t.Helper()
	res, err := Run(context.Background(), spec, opts)
	if !errors.Is(err, want) {
		t.Fatalf("Run(%v) error = %v, want %v", spec, err, want)
	}
	if res == nil {
		t.Fatalf("Run(%v) returned no result with %v", spec, err)
	}
	return res
}
