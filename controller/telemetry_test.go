package controller_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// A client's trace continues on the server (W3C trace context through the interceptors),
// and /metrics serves RPC and Raft metrics in the Prometheus format.
func TestTracePropagationAndMetrics(t *testing.T) {
	serverSpans := tracetest.NewSpanRecorder()
	tel, err := telemetry.Setup(telemetry.Options{ServiceName: "fleet-controller", SpanProcessors: []sdktrace.SpanProcessor{serverSpans}})
	if err != nil {
		t.Fatal(err)
	}
	n := controllertest.Start(t, controllertest.Options{Config: func(c *controller.Config) {
		c.Tracer, c.Meter, c.Metrics = tel.Tracer, tel.Meter, tel.MetricsHandler()
	}})

	clientSpans := tracetest.NewSpanRecorder()
	ctel, err := telemetry.Setup(telemetry.Options{ServiceName: "fleetctl", SpanProcessors: []sdktrace.SpanProcessor{clientSpans}})
	if err != nil {
		t.Fatal(err)
	}
	ci, err := otelconnect.NewInterceptor(otelconnect.WithTracerProvider(ctel.Tracer), otelconnect.WithPropagator(telemetry.Propagator()))
	if err != nil {
		t.Fatal(err)
	}
	c := newClients(n.URL, connect.WithInterceptors(ci))
	ctx, span := ctel.Tracer.Tracer("test").Start(context.Background(), "fleetctl profile apply")
	if _, err := c.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "traced", Spec: minimalSpec()})); err != nil {
		t.Fatal(err)
	}
	span.End()
	want := span.SpanContext().TraceID()
	var found bool
	for _, s := range serverSpans.Ended() {
		if s.Name() == "ebbflow.v1.ProfileService/CreateProfile" && s.SpanKind() == trace.SpanKindServer {
			found = true
			if s.SpanContext().TraceID() != want {
				t.Fatalf("server span trace %s, client trace %s", s.SpanContext().TraceID(), want)
			}
		}
	}
	if !found {
		t.Fatalf("no server span for CreateProfile among %d", len(serverSpans.Ended()))
	}

	res, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, m := range []string{"ebbflow_raft_term", "ebbflow_raft_commit_index", "ebbflow_raft_applied_index", "ebbflow_raft_leader", "rpc_server_"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if !strings.Contains(string(body), "ebbflow_raft_leader{") && !strings.Contains(string(body), "ebbflow_raft_leader 1") {
		t.Logf("metrics:\n%s", body)
	}
}
