// Package probe times real work against real targets (HTTP, TCP request/response and connect,
// throughput, Prometheus) with HDR histograms, the way wrk2, netperf and iperf3 do.
//
// One call to [Run] is one measurement of one [ebbflowv1.ProbeSpec]:
//
//   - an optional warm-up of [Options.Warmup], run exactly like a window and then discarded
//     (connections are opened, caches and congestion windows are warm);
//   - [Options.Windows] measurement windows, each lasting the spec's duration, back to back on
//     the same connections where the probe keeps any;
//   - one [Result]: the latency distribution over all windows (HDR histogram, nanosecond
//     resolution, three significant digits), a bounded set of raw samples for the rank tests of
//     the judge, error counts, and the rate the probe achieved.
//
// The settings are deterministic (no random connection counts, no adaptive rates), so the
// baseline and every phase of a rollout are measured the same way and compare fairly.
//
// Kinds:
//
//   - PROBE_KIND_HTTP: GET the target URL at a fixed rate, coordinated-omission aware (wrk2).
//   - PROBE_KIND_TCP_RR: request/response round trips on one kept connection (netperf TCP_RR)
//     against [ServeEcho].
//   - PROBE_KIND_TCP_CRR: connect, request/response, close per transaction (netperf TCP_CRR)
//     against [ServeEcho].
//   - PROBE_KIND_THROUGHPUT: stream bytes for each window to [ServeDiscard], which reports what
//     it received (iperf3). Samples are per-window bytes per second.
//   - PROBE_KIND_PROMETHEUS: one instant query per window against a Prometheus HTTP API; the
//     query must return milliseconds (Flagger-style metric checks).
package probe
