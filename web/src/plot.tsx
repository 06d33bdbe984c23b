// The latency plot: one curve per measured phase result on a "nines" quantile axis.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import { Phase } from "../../clients/ts/src/gen/ebbflow/v1/common_pb.js";
import { ProbeKind, type LatencyDistribution } from "../../clients/ts/src/gen/ebbflow/v1/measurement_pb.js";
import type { PhaseResult } from "../../clients/ts/src/gen/ebbflow/v1/rollout_pb.js";
import { phaseName } from "./fmt.js";

export interface Series {
  label: string;
  // [quantile, latency ms] with the raw quantile q (not the plotted x).
  points: [number, number][];
}

const LATENCY_KINDS = new Set<ProbeKind>([ProbeKind.HTTP, ProbeKind.TCP_RR, ProbeKind.TCP_CRR]);
const Q_MAX = 0.9999; // q = 1 (the maximum) has no place on a nines axis: it is left out.

export function resultLabel(r: PhaseResult): string {
  const name = phaseName(r.phase);
  if (r.phase === Phase.KPR && r.kprBatch && r.kprBatch.batch > 1) return `kpr batch ${r.kprBatch.batch}`;
  return name;
}

// latencySeries turns each result's measurements into one curve. A result holds several
// latency measurements (HTTP, TCP_RR, TCP_CRR probes, every window); they are merged by taking,
// at each quantile, the count-weighted mean of the measurements' latency_ms. That is not the
// exact quantile of the pooled samples, but it is simple and good enough for a plot. Every
// distribution has the same quantile list, so the first one's is the shared x.
export function latencySeries(results: PhaseResult[]): Series[] {
  let shared: number[] | undefined;
  const perResult: { label: string; dists: LatencyDistribution[] }[] = [];
  for (const r of results) {
    const dists: LatencyDistribution[] = [];
    for (const m of r.measurements) {
      const d = m.distribution;
      if (!LATENCY_KINDS.has(m.kind) || !d || d.quantiles.length === 0) continue;
      dists.push(d);
      shared ??= d.quantiles.filter((q) => q > 0 && q <= Q_MAX);
    }
    if (dists.length > 0) perResult.push({ label: resultLabel(r), dists });
  }
  if (!shared) return [];
  const seen = new Map<string, number>();
  return perResult.map(({ label, dists }) => {
    const n = (seen.get(label) ?? 0) + 1;
    seen.set(label, n);
    const lookups = dists.map((d) => {
      const m = new Map<number, number>();
      d.quantiles.forEach((q, i) => m.set(q, d.latencyMs[i] ?? NaN));
      // Count as a number: the weights only need to be relative.
      return { m, w: Math.max(1, Number(d.count)) };
    });
    const points: [number, number][] = [];
    for (const q of shared!) {
      let sum = 0;
      let wsum = 0;
      for (const { m, w } of lookups) {
        const v = m.get(q);
        if (v === undefined || !Number.isFinite(v)) continue;
        sum += v * w;
        wsum += w;
      }
      if (wsum > 0) points.push([q, sum / wsum]);
    }
    return { label: n > 1 ? `${label} (${n})` : label, points };
  });
}

const nines = (q: number) => -Math.log10(1 - q);
const TICKS: [number, string][] = [
  [0.5, "50%"],
  [0.9, "90%"],
  [0.99, "99%"],
  [0.999, "99.9%"],
  [0.9999, "99.99%"],
];
const COLORS = ["#64748b", "#2563eb", "#d97706", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#be185d"];

function qLabel(x: number): string {
  const q = 1 - Math.pow(10, -x);
  const p = q * 100;
  return `p${p >= 99.9 ? p.toFixed(2) : p >= 99 ? p.toFixed(1) : p.toFixed(0)}`;
}

function msLabel(v: number): string {
  if (v >= 1000) return `${(v / 1000).toPrecision(3)} s`;
  if (v >= 1) return `${+v.toPrecision(3)} ms`;
  return `${+(v * 1000).toPrecision(3)} µs`;
}

export function LatencyPlot(props: { series: Series[] }) {
  const el = useRef<HTMLDivElement>(null);
  const json = JSON.stringify(props.series);

  useEffect(() => {
    const host = el.current;
    if (!host || props.series.length === 0) return;
    const xs = props.series[0]!.points.map(([q]) => q);
    // Build the shared x (on the nines scale) from every series' quantiles.
    const qset = new Set<number>(xs);
    for (const s of props.series) for (const [q] of s.points) qset.add(q);
    const qs = [...qset].sort((a, b) => a - b);
    const data: uPlot.AlignedData = [
      qs.map(nines),
      ...props.series.map((s) => {
        const m = new Map(s.points);
        return qs.map((q) => {
          const v = m.get(q);
          return v !== undefined && v > 0 ? v : null; // log scale: no zeros
        });
      }),
    ];
    const width = () => Math.max(320, host.clientWidth || 900);
    const u = new uPlot(
      {
        width: width(),
        height: 340,
        scales: {
          x: { time: false, range: (_u, min) => [Math.min(0, min), nines(Q_MAX)] },
          y: { distr: 3, log: 10 },
        },
        axes: [
          {
            label: "quantile",
            splits: () => TICKS.map(([q]) => nines(q)),
            values: (_u, splits) => splits.map((x) => TICKS.find(([q]) => Math.abs(nines(q) - x) < 1e-9)?.[1] ?? ""),
          },
          { label: "latency", size: 70, values: (_u, splits) => splits.map(msLabel) },
        ],
        series: [
          { label: "quantile", value: (_u, v) => (v == null ? "—" : qLabel(v)) },
          ...props.series.map((s, i) => ({
            label: s.label,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            spanGaps: true,
            points: { show: false },
            value: (_u: uPlot, v: number | null) => (v == null ? "—" : msLabel(v)),
          })),
        ],
        cursor: { drag: { x: false, y: false } },
      },
      data,
      host,
    );
    const onResize = () => u.setSize({ width: width(), height: 340 });
    window.addEventListener("resize", onResize);
    return () => {
      window.removeEventListener("resize", onResize);
      u.destroy();
    };
  }, [json]);

  return (
    <div class="plot" data-testid="latency-plot" data-series={json}>
      {props.series.length === 0 && <p class="muted">No latency distribution measured yet.</p>}
      {/* uPlot owns this element's children; Preact renders none into it. */}
      <div ref={el} />
    </div>
  );
}
