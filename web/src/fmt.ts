// Formatting helpers: enum names, times, durations, percentages.
import { timestampDate, durationMs, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Phase } from "../../clients/ts/src/gen/ebbflow/v1/common_pb.js";
import {
  ClusterRolloutState,
  RolloutState,
  Verdict,
  WaveState,
} from "../../clients/ts/src/gen/ebbflow/v1/rollout_pb.js";
import { Role } from "../../clients/ts/src/gen/ebbflow/v1/access_pb.js";
import { Liveness } from "../../clients/ts/src/gen/ebbflow/v1/cluster_pb.js";
import { ProbeKind } from "../../clients/ts/src/gen/ebbflow/v1/measurement_pb.js";

// enumName turns a generated TS enum value into its short lower-case name, e.g.
// RolloutState.WAITING_FOR_APPROVAL -> "waiting_for_approval". protoc-gen-es already strips
// the proto prefix (ROLLOUT_STATE_); a prefix is stripped here too in case it is not.
export function enumName(e: Record<number, string>, v: number, prefix = ""): string {
  const n = e[v];
  if (n === undefined) return String(v);
  const s = prefix && n.startsWith(prefix) ? n.slice(prefix.length) : n;
  return s.toLowerCase();
}

export const rolloutStateName = (v: RolloutState) => enumName(RolloutState, v, "ROLLOUT_STATE_");
export const waveStateName = (v: WaveState) => enumName(WaveState, v, "WAVE_STATE_");
export const clusterStateName = (v: ClusterRolloutState) =>
  enumName(ClusterRolloutState, v, "CLUSTER_ROLLOUT_STATE_");
export const phaseName = (v: Phase) => enumName(Phase, v, "PHASE_");
export const roleName = (v: Role) => enumName(Role, v, "ROLE_");
export const livenessName = (v: Liveness) => enumName(Liveness, v, "LIVENESS_");
export const probeKindName = (v: ProbeKind) => enumName(ProbeKind, v, "PROBE_KIND_");
// An unjudged verdict (UNSPECIFIED) is "" rather than "unspecified".
export const verdictName = (v: Verdict) => (v === Verdict.UNSPECIFIED ? "" : enumName(Verdict, v, "VERDICT_"));

export const TERMINAL_ROLLOUT = new Set<RolloutState>([
  RolloutState.SUCCEEDED,
  RolloutState.FAILED,
  RolloutState.ABORTED,
  RolloutState.ROLLED_BACK,
]);

export function tsMs(t: Timestamp | undefined): number | undefined {
  return t ? timestampDate(t).getTime() : undefined;
}

export function durMs(d: Duration | undefined): number {
  return d ? durationMs(d) : 0;
}

// humanDuration formats milliseconds compactly: "45s", "3m 05s", "2h 10m", "3d 4h".
export function humanDuration(ms: number): string {
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  let out: string;
  if (d > 0) out = `${d}d ${h}h`;
  else if (h > 0) out = `${h}h ${String(m).padStart(2, "0")}m`;
  else if (m > 0) out = `${m}m ${String(s).padStart(2, "0")}s`;
  else out = `${s}s`;
  return neg ? `-${out}` : out;
}

export function age(t: Timestamp | undefined, now: number): string {
  const ms = tsMs(t);
  return ms === undefined ? "—" : `${humanDuration(Math.max(0, now - ms))} ago`;
}

export function isoTime(t: Timestamp | undefined): string {
  const ms = tsMs(t);
  if (ms === undefined) return "—";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// pct formats a delta in percent with its sign and one decimal: "+12.3%", "-4.0%".
export function pct(v: number): string {
  if (!Number.isFinite(v)) return v > 0 ? "+∞%" : "-∞%";
  const r = Math.round(v * 10) / 10;
  return `${r >= 0 ? "+" : ""}${r.toFixed(1)}%`;
}

export function pValue(p: number): string {
  if (p === 0) return "0";
  if (p < 0.0001) return "< 0.0001";
  return p.toPrecision(2);
}

export function ms(v: number): string {
  if (v >= 100) return `${v.toFixed(0)} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}
