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
const Q_MIN = 0.001; // the left edge of the x axis, labelled "0.1%"
const TICKS: [number, string][] = [
  [Q_MIN, "0.1%"],
  [0.5, "50%"],
  [0.9, "90%"],
  [0.99, "99%"],
  [0.999, "99.9%"],
  [0.9999, "99.99%"],
];
// Baseline neutral (and dashed), then distinct hues in a fixed order.
const COLORS = ["#6b7280", "#2563eb", "#ea580c", "#dc2626", "#9333ea", "#0d9488", "#ca8a04", "#db2777"];
const HEIGHT = 340;

function qLabel(x: number): string {
  return `p${+((1 - Math.pow(10, -x)) * 100).toFixed(3)}`;
}

// msLabel formats a latency in ms: "1.5 s", "12 ms", "1.04 ms", "0.5 ms" on ticks of a
// sub-ms axis is written "500 µs". Three significant digits at most.
export function msLabel(v: number): string {
  if (!Number.isFinite(v)) return "";
  if (v >= 1000) return `${+(v / 1000).toPrecision(3)} s`;
  if (v >= 1) return `${+v.toPrecision(3)} ms`;
  const us = v * 1000;
  if (us >= 1) return `${+us.toPrecision(3)} µs`;
  return `${+(us * 1000).toPrecision(3)} ns`;
}

// The mantissa of v (1 to 9.99…) and its decade, robust to 10 ** -k rounding.
function decompose(v: number): [number, number] {
  const k = Math.floor(Math.log10(v) + 1e-9);
  return [+(v / Math.pow(10, k)).toPrecision(6), k];
}

// A tick's label: 1, 2 and 5 × 10^k get one (only 1 × 10^k on an axis of over three decades,
// where 1-2-5 labels would collide); the other grid lines stay unlabelled.
const labelled = (v: number, decadesOnly: boolean) => {
  const [m] = decompose(v);
  return m === 1 || (!decadesOnly && (m === 2 || m === 5));
};

// snap125 rounds v down (dir -1) or up (dir 1) to the nearest 1, 2 or 5 × 10^k.
export function snap125(v: number, dir: -1 | 1): number {
  const [m, k] = decompose(v);
  const steps = [1, 2, 5, 10];
  let pick: number;
  if (dir < 0) pick = [...steps].reverse().find((s) => s <= m + 1e-9) ?? 1;
  else pick = steps.find((s) => s >= m - 1e-9) ?? 10;
  return +(pick * Math.pow(10, k)).toPrecision(6);
}

// yRange is the latency axis: the plotted values ±5%, widened to 1-2-5 steps.
export function yRange(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!(v > 0) || !Number.isFinite(v)) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (!Number.isFinite(lo)) return [0.1, 10];
  return [snap125(lo / 1.05, -1), snap125(hi * 1.05, 1)];
}

// logSplits are the grid lines of a log axis between min and max: every m × 10^k, m = 1…9,
// on an axis of a decade or less also 1.2, 1.4, 1.6, 1.8 and 2.5 × 10^k, on one of over three
// decades only 1, 2 and 5 × 10^k.
const MANTISSAS = [1, 2, 3, 4, 5, 6, 7, 8, 9];
const FINE_MANTISSAS = [1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 4, 5, 6, 7, 8, 9];
function logSplits(min: number, max: number): number[] {
  const out: number[] = [];
  const ms = max / min <= 10.0001 ? FINE_MANTISSAS : max / min > 1001 ? [1, 2, 5] : MANTISSAS;
  for (let k = Math.floor(Math.log10(min) + 1e-9); k <= Math.ceil(Math.log10(max)); k++) {
    for (const m of ms) {
      const v = +(m * Math.pow(10, k)).toPrecision(6);
      if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}

export function LatencyPlot(props: { series: Series[] }) {
  const el = useRef<HTMLDivElement>(null);
  const json = JSON.stringify(props.series);

  useEffect(() => {
    const host = el.current;
    if (!host || props.series.length === 0) return;
    // The shared x (on the nines scale) from every series' quantiles.
    const qset = new Set<number>();
    for (const s of props.series) for (const [q] of s.points) qset.add(q);
    const qs = [...qset].sort((a, b) => a - b);
    const ys = props.series.map((s) => {
      const m = new Map(s.points);
      return qs.map((q) => {
        const v = m.get(q);
        return v !== undefined && v > 0 ? v : null; // log scale: no zeros
      });
    });
    const data: uPlot.AlignedData = [qs.map(nines), ...ys];
    const [yMin, yMax] = yRange(ys.flat().filter((v): v is number => v !== null));
    const xMin = Math.min(nines(Q_MIN), ...qs.map(nines));
    const width = () => Math.max(320, host.clientWidth || 900);
    const u = new uPlot(
      {
        width: width(),
        height: HEIGHT,
        padding: [12, 28, 0, 8],
        scales: {
          x: { time: false, range: () => [xMin, nines(Q_MAX)] },
          y: { distr: 3, log: 10, range: () => [yMin, yMax] },
        },
        axes: [
          {
            label: "quantile",
            labelSize: 20,
            size: 38,
            splits: () => TICKS.map(([q]) => nines(q)),
            values: (_u, splits) => splits.map((x) => TICKS.find(([q]) => Math.abs(nines(q) - x) < 1e-9)?.[1] ?? ""),
            grid: { stroke: "#e5e7eb", width: 1 },
            ticks: { stroke: "#d1d5db", width: 1, size: 4 },
          },
          {
            label: "latency",
            labelSize: 24,
            size: 64,
            splits: (_u, _i, min, max) => logSplits(min, max),
            // Every split keeps its grid line; only 1, 2, 5 × 10^k get a label.
            filter: (_u, splits) => splits,
            values: (_u, splits) => splits.map((v) => (v != null && labelled(v, yMax / yMin > 1001) ? msLabel(v) : "")),
            grid: { stroke: "#eef0f3", width: 1 },
            ticks: { stroke: "#d1d5db", width: 1, size: 4 },
          },
        ],
        series: [
          { label: "quantile", value: (_u, v) => (v == null ? "" : qLabel(v)) },
          ...props.series.map((s, i) => ({
            label: s.label,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            dash: s.label === "baseline" ? [6, 4] : undefined,
            spanGaps: true,
            points: { show: false },
            // Blank until the cursor is on the plot: then the latency at its quantile.
            value: (_u: uPlot, v: number | null) => (v == null ? "" : msLabel(v)),
          })),
        ],
        cursor: { drag: { x: false, y: false }, points: { size: 6 } },
        legend: { live: true },
        hooks: {
          setCursor: [(p) => host.classList.toggle("hovering", p.cursor.idx != null)],
        },
      },
      data,
      host,
    );
    let w = width();
    const ro = new ResizeObserver(() => {
      const nw = width();
      if (nw !== w) {
        w = nw;
        u.setSize({ width: nw, height: HEIGHT });
      }
    });
    ro.observe(host);
    return () => {
      ro.disconnect();
      u.destroy();
    };
  }, [json]);

  return (
    <div class="plot" data-testid="latency-plot" data-series={json}>
      {props.series.length === 0 && <p class="muted">No latency distribution measured yet.</p>}
      {/* uPlot owns this element's children; Preact renders none into it. */}
      <div ref={el} class="plot-host" />
    </div>
  );
}
