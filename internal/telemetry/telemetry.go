// Package telemetry sets up OpenTelemetry for Ebbflow's processes: W3C trace propagation, a
// tracer provider, and OTel metrics exported in Prometheus format for a /metrics endpoint.
package telemetry

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry holds one process's providers.
type Telemetry struct {
	Tracer   trace.TracerProvider
	Meter    metric.MeterProvider
	registry *prometheus.Registry
	shutdown []func(context.Context) error
}

// Options tune Setup.
type Options struct {
	// ServiceName names the process in spans and metrics ("fleet-controller").
	ServiceName string
	// SpanProcessors receive every finished span (an exporter, or a recorder in tests).
	SpanProcessors []sdktrace.SpanProcessor
	// Global also installs the providers and the W3C propagator as the process-wide defaults.
	Global bool
}

// Setup builds the tracer and meter providers. Metrics go to a private Prometheus registry
// served by MetricsHandler; traces go to the given span processors.
func Setup(opts Options) (*Telemetry, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(opts.ServiceName)))
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	// The scheduler latencies (go_sched_latencies_seconds: how long goroutines wait to run) show
	// a node too busy to answer Raft in time, before it costs an election.
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, p := range opts.SpanProcessors {
		topts = append(topts, sdktrace.WithSpanProcessor(p))
	}
	if len(opts.SpanProcessors) == 0 {
		// Nobody receives spans: record none. A recording span costs its attributes and events
		// for as long as it is open, and an agent's assignment stream is open for days, so
		// 10,000 agents would hold 10,000 spans that no exporter will ever read. Trace context
		// still propagates (the spans are valid, not sampled).
		topts = append(topts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tp := sdktrace.NewTracerProvider(topts...)
	t := &Telemetry{Tracer: tp, Meter: mp, registry: reg, shutdown: []func(context.Context) error{tp.Shutdown, mp.Shutdown}}
	if opts.Global {
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
		otel.SetTextMapPropagator(Propagator())
	}
	return t, nil
}

// Propagator is the W3C trace-context and baggage propagator every Ebbflow process uses.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// MetricsHandler serves the registry in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{Registry: t.registry})
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
