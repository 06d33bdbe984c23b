package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Response bodies in the exact shape of the Prometheus HTTP API (docs/querying/api.md).
const (
	promVectorTwoSeries = `{
   "status" : "success",
   "data" : {
      "resultType" : "vector",
      "result" : [
         {
            "metric" : {
               "__name__" : "up",
               "job" : "prometheus",
               "instance" : "localhost:9090"
            },
            "value": [ 1435781451.781, "1" ]
         },
         {
            "metric" : {
               "__name__" : "up",
               "job" : "node",
               "instance" : "localhost:9100"
            },
            "value" : [ 1435781451.781, "0" ]
         }
      ]
   }
}`
	promMatrix = `{
   "status" : "success",
   "data" : {
      "resultType" : "matrix",
      "result" : [
         {
            "metric" : {
               "__name__" : "up",
               "job" : "prometheus",
               "instance" : "localhost:9090"
            },
            "values" : [
               [ 1435781430.781, "1" ],
               [ 1435781445.781, "1" ],
               [ 1435781460.781, "1" ]
            ]
         }
      ]
   }
}`
	promEmpty = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	promError = `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:10: parse error: unexpected right parenthesis ')'"}`
)

// promVector is an aggregated latency query's answer: one series without labels.
func promVector(v string) string {
	return fmt.Sprintf(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1435781451.781,%q]}]}}`, v)
}

func promScalar(v string) string {
	return fmt.Sprintf(`{"status":"success","data":{"resultType":"scalar","result":[1435781451.781,%q]}}`, v)
}

func TestParsePromResponse(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    float64
		wantErr string
	}{
		{"vector", 200, promVector("12.5"), 12.5, ""},
		{"vector with labels and warnings", 200, `{"status":"success","warnings":["w"],"data":{"resultType":"vector","result":[{"metric":{"job":"web"},"value":[1435781451.781,"0.553"]}]}}`, 0.553, ""},
		{"scalar", 200, promScalar("4.8"), 4.8, ""},
		{"zero", 200, promScalar("0"), 0, ""},
		{"empty vector", 200, promEmpty, 0, "empty result"},
		{"several series", 200, promVectorTwoSeries, 0, "2 series"},
		{"matrix", 200, promMatrix, 0, `result type "matrix"`},
		{"string", 200, `{"status":"success","data":{"resultType":"string","result":[1435781451.781,"x"]}}`, 0, `result type "string"`},
		{"NaN", 200, promVector("NaN"), 0, "NaN"},
		{"+Inf", 200, promScalar("+Inf"), 0, "+Inf"},
		{"negative", 200, promVector("-3"), 0, "negative"},
		{"not a number", 200, promVector("fast"), 0, `"fast"`},
		{"native histogram", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1435781451.781,{"count":"1","sum":"1"}]}]}}`, 0, "no float value"},
		{"error 400", 400, promError, 0, "HTTP 400: bad_data: invalid parameter"},
		{"error 422", 422, `{"status":"error","errorType":"execution","error":"expanding series: context deadline exceeded"}`, 0, "HTTP 422: execution"},
		{"error 503 without JSON", 503, "Service Unavailable\n", 0, "HTTP 503: Service Unavailable"},
		{"error status with 200", 200, `{"status":"error","errorType":"internal","error":"oops"}`, 0, "internal: oops"},
		{"not JSON", 200, "<html>", 0, "decode response"},
		{"no result type", 200, `{"status":"success","data":{}}`, 0, "no data.resultType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePromResponse(tt.status, []byte(tt.body))
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// promServer serves /prom/api/v1/query with the given bodies in turn (the last repeats) and
// checks the query it receives.
func promServer(t *testing.T, query string, status int, bodies ...string) string {
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /prom/api/v1/query", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("query"); got != query {
			t.Errorf("query %q, want %q", got, query)
		}
		i := min(int(n.Add(1)-1), len(bodies)-1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, bodies[i])
	})
	return startHTTP(t, mux) + "/prom/"
}

func TestPrometheusProbe(t *testing.T) {
	const q = `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job="web"}[1m]))) * 1000`
	base := promServer(t, q, 200, promVector("10"), promScalar("20"), promVector("30.5"))
	spec := newSpec(kindProm, base, 0, 10*time.Millisecond)
	spec.Query = q
	res := mustRun(t, spec, Options{Windows: 3})

	if res.Count != 3 || res.Errors != 0 || res.Windows != 3 {
		t.Fatalf("count %d errors %d (last %q) windows %d, want one value per window", res.Count, res.Errors, res.LastError, res.Windows)
	}
	if fmt.Sprint(res.SamplesMs) != "[10 20 30.5]" {
		t.Errorf("samples %v, want [10 20 30.5]", res.SamplesMs)
	}
	if res.MinMs != 10 || res.MaxMs != 30.5 || math.Abs(res.MeanMs-60.5/3) > 1e-9 {
		t.Errorf("min %v max %v mean %v", res.MinMs, res.MaxMs, res.MeanMs)
	}
	if math.Abs(res.P50Ms-20) > 0.02 {
		t.Errorf("p50 %v, want 20 (within the histogram's 0.1%%)", res.P50Ms)
	}
	if res.OpsPerSecond != 0 {
		t.Errorf("ops/s %v on a Prometheus result", res.OpsPerSecond)
	}
}

func TestPrometheusProbeFailures(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr error
		wantMsg string
	}{
		{"empty result", 200, promEmpty, ErrEmptyResult, "empty result"},
		{"error status", 400, promError, ErrNoSuccess, "bad_data"},
		{"unavailable", 503, "upstream connect error", ErrNoSuccess, "HTTP 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := newSpec(kindProm, promServer(t, "up", tt.status, tt.body), 0, 5*time.Millisecond)
			spec.Query = "up"
			res, err := Run(context.Background(), spec, Options{Windows: 2})
			if !errors.Is(err, ErrNoSuccess) || !errors.Is(err, tt.wantErr) || res == nil {
				t.Fatalf("error %v, want it to wrap %v and %v, with a result", err, ErrNoSuccess, tt.wantErr)
			}
			if res.Errors != 2 || res.Count != 0 || !strings.Contains(res.LastError, tt.wantMsg) {
				t.Errorf("errors %d count %d last %q, want 2 failed windows mentioning %q", res.Errors, res.Count, res.LastError, tt.wantMsg)
			}
		})
	}
}
