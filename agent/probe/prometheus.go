package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// promProber is the Flagger-style metric check: at the end of every window it runs one
// instant query (GET {target}/api/v1/query?query=...) against a Prometheus HTTP API and
// records the value as one latency sample.
//
// The query must return one series (or a scalar) whose value is a latency in MILLISECONDS,
// e.g.
//
//	histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job="web"}[1m]))) * 1000
//
// Errors (non-2xx status, "status":"error", an empty result, several series, NaN or
// infinite or negative values, other result types) count as a failed window.
type promProber struct {
	client  *http.Client
	owned   *http.Transport
	url     string // the query endpoint without parameters
	query   string
	timeout time.Duration
}

// maxPromResponse bounds how much of a query response is read.
const maxPromResponse = 8 << 20

func newPromProber(base, query string, timeout time.Duration, o Options) *promProber {
	p := &promProber{url: strings.TrimSuffix(base, "/") + "/api/v1/query", query: query, timeout: timeout}
	p.client = o.HTTPClient
	if p.client == nil {
		p.owned = newTransport(o.Dialer, 2)
		p.client = &http.Client{Transport: p.owned}
	}
	return p
}

func (p *promProber) prepare(context.Context) error { return nil }

func (p *promProber) close() {
	if p.owned != nil {
		p.owned.CloseIdleConnections()
	}
}

func (p *promProber) window(ctx context.Context, d time.Duration, rec *recorder) (time.Duration, error) {
	t0 := time.Now()
	if err := sleepUntil(ctx, t0.Add(d)); err != nil {
		return time.Since(t0), err
	}
	v, err := p.queryValue(ctx)
	took := time.Since(t0)
	switch {
	case ctx.Err() != nil:
		return took, ctx.Err()
	case err != nil:
		rec.fail(err)
	default:
		rec.observeMs(v)
	}
	return took, nil
}

// promResponse is the Prometheus HTTP API envelope.
type promResponse struct {
	Status    string   `json:"status"`
	Data      promData `json:"data"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
}

type promData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []json.RawMessage `json:"value"`
}

func (p *promProber) queryValue(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	u := p.url + "?" + url.Values{"query": {p.query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("prometheus query: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPromResponse))
	if err != nil {
		return 0, fmt.Errorf("prometheus query: read response: %w", err)
	}
	return parsePromResponse(resp.StatusCode, body)
}

// parsePromResponse extracts the single value of an instant query response.
func parsePromResponse(status int, body []byte) (float64, error) {
	var r promResponse
	jsonErr := json.Unmarshal(body, &r)
	if status < 200 || status > 299 {
		if jsonErr == nil && r.Status == "error" {
			return 0, fmt.Errorf("prometheus query: HTTP %d: %s: %s", status, r.ErrorType, r.Error)
		}
		return 0, fmt.Errorf("prometheus query: HTTP %d: %s", status, snippet(body))
	}
	if jsonErr != nil {
		return 0, fmt.Errorf("prometheus query: decode response: %w", jsonErr)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("prometheus query: status %q: %s: %s", r.Status, r.ErrorType, r.Error)
	}
	var raw []json.RawMessage
	switch r.Data.ResultType {
	case "vector":
		var vec []promSample
		if err := json.Unmarshal(r.Data.Result, &vec); err != nil {
			return 0, fmt.Errorf("prometheus query: decode vector: %w", err)
		}
		switch len(vec) {
		case 0:
			return 0, ErrEmptyResult
		case 1:
		default:
			return 0, fmt.Errorf("prometheus query: returned %d series, want one (aggregate it, e.g. with sum or max)", len(vec))
		}
		if vec[0].Value == nil {
			return 0, fmt.Errorf("prometheus query: series %v has no float value (native histograms are not supported)", vec[0].Metric)
		}
		raw = vec[0].Value
	case "scalar":
		if err := json.Unmarshal(r.Data.Result, &raw); err != nil {
			return 0, fmt.Errorf("prometheus query: decode scalar: %w", err)
		}
	case "":
		return 0, fmt.Errorf("prometheus query: response has no data.resultType")
	default:
		return 0, fmt.Errorf("prometheus query: result type %q, want vector or scalar (use an instant query without a range selector)", r.Data.ResultType)
	}
	return sampleValue(raw)
}

// sampleValue reads [<unix_time>, "<value>"]; values are strings so that NaN and Inf can be
// sent.
func sampleValue(raw []json.RawMessage) (float64, error) {
	if len(raw) != 2 {
		return 0, fmt.Errorf("prometheus query: sample has %d elements, want [time, value]", len(raw))
	}
	var s string
	if err := json.Unmarshal(raw[1], &s); err != nil {
		return 0, fmt.Errorf("prometheus query: sample value: %w", err)
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("prometheus query: sample value %q: %w", s, err)
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("prometheus query: value is %s (no traffic in the range?)", s)
	case v < 0:
		return 0, fmt.Errorf("prometheus query: value %v is negative, want a latency in milliseconds", v)
	}
	return v, nil
}

func snippet(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
