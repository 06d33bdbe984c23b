// One rollout, live: header, controls, waves with every cluster, skipped clusters, audit.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { AuditRecord } from "../../clients/ts/src/gen/ebbflow/v1/audit_pb.js";
import { Phase } from "../../clients/ts/src/gen/ebbflow/v1/common_pb.js";
import {
  ClusterRolloutState,
  RolloutState,
  Verdict,
  WaveState,
  type Rollout,
  type RolloutCluster,
  type Wave,
} from "../../clients/ts/src/gen/ebbflow/v1/rollout_pb.js";
import { audit, errorText, rollouts } from "./api.js";
import { useActions, type Action } from "./controls.js";
import { FilterBar, countClusters, matcher, parseFilter, type Matcher } from "./filter.js";
import {
  TERMINAL_ROLLOUT,
  age,
  clusterStateName,
  durMs,
  humanDuration,
  isoTime,
  pct,
  phaseName,
  rolloutStateName,
  tsMs,
  verdictName,
  waveStateName,
} from "./fmt.js";
import { Badge, ErrorLine, Section, clusterHref, countRender, memo, useNow } from "./util.js";
import { useRolloutWatch } from "./watch.js";

export interface Me {
  name: string;
  role: string;
  canControl: boolean;
}

// latestResult is the cluster's last result; latestJudged its last judged one.
export function latestResult(c: RolloutCluster) {
  return c.results[c.results.length - 1];
}
export function latestJudged(c: RolloutCluster) {
  for (let i = c.results.length - 1; i >= 0; i--) if (c.results[i]!.verdict !== Verdict.UNSPECIFIED) return c.results[i];
  return undefined;
}

const NOT_SKIPPABLE = new Set<ClusterRolloutState>([
  ClusterRolloutState.SKIPPED,
  ClusterRolloutState.SUCCEEDED,
  ClusterRolloutState.ROLLING_BACK,
  ClusterRolloutState.ROLLED_BACK,
]);

export function canSkip(c: RolloutCluster): boolean {
  return !NOT_SKIPPABLE.has(c.state);
}

export function skipAction(rid: string, cluster: string): Action {
  return {
    action: "skip",
    question: `Skip cluster ${cluster} in rollout ${rid}?`,
    reason: true,
    run: async (reason) => {
      await rollouts.skipCluster({ id: rid, cluster, reason });
      return `Skipped ${cluster} in ${rid}`;
    },
  };
}

function approveClusterAction(rid: string, cluster: string): Action {
  return {
    action: "approve",
    question: `Approve the inconclusive result of cluster ${cluster} in rollout ${rid}?`,
    reason: false,
    run: async () => {
      await rollouts.approveRollout({ id: rid, wave: -1, cluster });
      return `Approved ${cluster} in ${rid}`;
    },
  };
}

// kprText is the cluster's kube-proxy replacement batch, shown only while it is in the kpr
// phase or its latest result is a kpr batch (once past kpr the batch is history).
function kprText(c: RolloutCluster): string {
  if (c.kprBatch <= 0) return "";
  const last = latestResult(c);
  const lastIsKpr = last?.phase === Phase.KPR && last.kprBatch !== undefined;
  if (c.phase !== Phase.KPR && !lastIsKpr) return "";
  const batches = lastIsKpr ? last!.kprBatch!.batches : 0;
  return batches ? `batch ${c.kprBatch}/${batches}` : `batch ${c.kprBatch}`;
}

interface RowProps {
  rid: string;
  c: RolloutCluster;
  controls: boolean; // operator or admin, and the rollout not terminal
  onAction: (a: Action) => void;
}

// ClusterRow is one cluster's detail row; memoised on the record's identity, so a partial
// message re-renders only the rows whose record changed.
const ClusterRow = memo(function ClusterRow({ rid, c, controls, onAction }: RowProps) {
  countRender();
  const last = latestResult(c);
  const judged = latestJudged(c);
  const p999 = judged?.percentiles.find((p) => p.name === "p999");
  const verdict = last ? verdictName(last.verdict) : "";
  const state = clusterStateName(c.state);
  const phase = phaseName(c.phase);
  const href = clusterHref(rid, c.cluster);
  return (
    <tr
      data-cluster={c.cluster}
      data-phase={phase}
      data-state={state}
      data-verdict={verdict}
      class="clickable"
      onClick={(e) => {
        const t = e.target as HTMLElement;
        if (!t.closest("a,button")) window.location.hash = href;
      }}
    >
      <td class="name">
        <a href={href}>{c.cluster}</a>
      </td>
      <td>{phase}</td>
      <td>
        <Badge value={state} />
      </td>
      <td>
        <Badge value={verdict} />
      </td>
      <td class="num" data-testid="p50-delta">
        {judged ? pct(judged.p50DeltaPercent) : "—"}
      </td>
      <td class="num" data-testid="p99-delta">
        {judged ? pct(judged.p99DeltaPercent) : "—"}
      </td>
      <td class="num">{p999 ? <span data-testid="p999-delta">{pct(p999.deltaPercent)}</span> : "—"}</td>
      <td>
        {c.heldPhases.length > 0 ? (
          <span class="held" title={c.heldReason}>
            held {c.heldPhases.map(phaseName).join(", ")}
            {c.heldReason && <span class="muted">: {c.heldReason}</span>}
          </span>
        ) : (
          ""
        )}
      </td>
      <td class="time">{kprText(c)}</td>
      <td class="reason">{c.reason}</td>
      {controls && (
        <td class="actions">
          {c.state === ClusterRolloutState.WAITING_FOR_APPROVAL && (
            <button type="button" class="small" data-action="approve" data-cluster={c.cluster} onClick={() => onAction(approveClusterAction(rid, c.cluster))}>
              Approve
            </button>
          )}
          {canSkip(c) && (
            <button type="button" class="small" data-action="skip" data-cluster={c.cluster} onClick={() => onAction(skipAction(rid, c.cluster))}>
              Skip
            </button>
          )}
        </td>
      )}
    </tr>
  );
});

// Cell is one square of a wave's overview grid (no data-cluster: the row carries the contract).
const Cell = memo(function Cell({ rid, c }: { rid: string; c: RolloutCluster }) {
  const last = latestResult(c);
  const v = last ? verdictName(last.verdict) : "";
  const s = clusterStateName(c.state);
  return (
    <a
      class={`cell s-${s}${v ? ` v-${v}` : ""}`}
      href={clusterHref(rid, c.cluster)}
      data-cell={c.cluster}
      title={`${c.cluster}: ${phaseName(c.phase)} ${s}${v ? ` (${v})` : ""}`}
    />
  );
});

function WaveGate({ w }: { w: Wave }) {
  const now = useNow();
  const parts: preact.ComponentChildren[] = [];
  const g = w.gates;
  const soak = durMs(g?.soakTime);
  const soakStart = tsMs(w.soakStartTime);
  if (soak > 0) {
    if (w.state === WaveState.SOAKING && soakStart !== undefined) {
      parts.push(<span data-testid="soak-remaining">soak {humanDuration(Math.max(0, soakStart + soak - now))} left</span>);
    } else parts.push(<span>soak {humanDuration(soak)}</span>);
  }
  if (w.state === WaveState.WAITING_FOR_APPROVAL) parts.push(<Badge value="require_approval" />);
  else if (g?.requireApproval) parts.push(<span>{w.approved ? `approved${w.approvedBy ? ` by ${w.approvedBy}` : ""}` : "needs approval"}</span>);
  const pd = durMs(g?.progressDeadline);
  const start = tsMs(w.startTime);
  if (pd > 0) {
    if (start !== undefined && w.state === WaveState.PROGRESSING) {
      const left = start + pd - now;
      parts.push(<span class={left < 0 ? "warn" : ""}>deadline {left >= 0 ? `in ${humanDuration(left)}` : "passed"}</span>);
    } else parts.push(<span>deadline {humanDuration(pd)}</span>);
  }
  if (g?.maxConcurrency) parts.push(<span>concurrency {g.maxConcurrency}</span>);
  if (g?.maxFailures.case === "maxFailuresCount") parts.push(<span>max failures {g.maxFailures.value}</span>);
  if (g?.maxFailures.case === "maxFailuresPercent") parts.push(<span>max failures {g.maxFailures.value}%</span>);
  return <span class="gates">{parts.map((p, i) => <span key={i} class="gate">{p}</span>)}</span>;
}

function countStates(cs: RolloutCluster[]) {
  const n: Record<string, number> = {};
  for (const c of cs) {
    const s = clusterStateName(c.state);
    n[s] = (n[s] ?? 0) + 1;
  }
  return n;
}

interface WaveProps {
  rid: string;
  w: Wave;
  controls: boolean;
  onAction: (a: Action) => void;
  match?: Matcher; // the cluster filter; undefined shows every cluster
}

// WaveView is one wave: its header, state counts, overview grid and rows. With a filter only
// the matching clusters' cells and rows are rendered (the others' rows keep no DOM); a wave
// with none collapses to its header.
function WaveView({ rid, w, controls, onAction, match }: WaveProps) {
  const shown = match ? w.clusters.filter(match) : w.clusters;
  const collapsed = match !== undefined && shown.length === 0 && w.clusters.length > 0;
  const head = (
    <header class="card-h">
      <h2>
        <span class="muted">#{w.index}</span> {w.name} <Badge value={waveStateName(w.state)} />
        {match && " "}
        {match && (
          <span class="muted shown" data-testid="wave-shown">
            ({shown.length} of {w.clusters.length} shown)
          </span>
        )}
      </h2>
      <WaveGate w={w} />
    </header>
  );
  if (collapsed) {
    return (
      <section class="card wave collapsed" data-wave={w.index} data-wave-state={waveStateName(w.state)} data-collapsed="">
        {head}
      </section>
    );
  }
  const counts = countStates(w.clusters);
  return (
    <section class="card wave" data-wave={w.index} data-wave-state={waveStateName(w.state)}>
      {head}
      <div class="counts">
        {w.clusters.length} clusters
        {Object.entries(counts)
          .sort()
          .map(([k, v]) => (
            <span key={k} class="count">
              <Badge value={k} /> {v}
            </span>
          ))}
      </div>
      {shown.length > 0 && (
        <div class="grid" aria-hidden="true">
          {shown.map((c) => (
            <Cell key={c.cluster} rid={rid} c={c} />
          ))}
        </div>
      )}
      {shown.length > 0 && (
        <div class="scroll">
          <table class="dense">
            <thead>
              <tr>
                <th>cluster</th>
                <th>phase</th>
                <th>state</th>
                <th>verdict</th>
                <th class="num">p50 Δ</th>
                <th class="num">p99 Δ</th>
                <th class="num">p999 Δ</th>
                <th>held</th>
                <th>kpr</th>
                <th>reason</th>
                {controls && <th></th>}
              </tr>
            </thead>
            <tbody>
              {shown.map((c) => (
                <ClusterRow key={c.cluster} rid={rid} c={c} controls={controls} onAction={onAction} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function RolloutHeader({ r }: { r: Rollout }) {
  const now = useNow();
  const spec = r.spec;
  return (
    <div class="rollout-h">
      <h1>
        {r.id} <Badge value={rolloutStateName(r.state)} testid="rollout-state" />
      </h1>
      <div class="card record">
        <dl class="kv kv2">
          <dt>profile</dt>
          <dd data-testid="profile">
            {spec?.profile}@{r.profileRevision.toString()}
          </dd>
          <dt>created by</dt>
          <dd>{r.createdBy || "—"}</dd>
          <dt>age</dt>
          <dd title={isoTime(r.createTime)}>{age(r.createTime, now)}</dd>
          <dt>{r.endTime ? "ended" : "created"}</dt>
          <dd class="time">{isoTime(r.endTime ?? r.createTime)}</dd>
          <dt class="wide">message</dt>
          <dd class="wide" data-testid="rollout-message">
            {r.message || "—"}
          </dd>
          {spec?.description && (
            <>
              <dt class="wide">description</dt>
              <dd class="wide">{spec.description}</dd>
            </>
          )}
        </dl>
      </div>
    </div>
  );
}

// nextApprovalWave is the wave whose approval gate an approve button opens: the one waiting
// for it, else the first not-yet-started wave with a closed gate (a gate may be opened early).
function nextApprovalWave(r: Rollout): Wave | undefined {
  return (
    r.waves.find((w) => w.state === WaveState.WAITING_FOR_APPROVAL) ??
    r.waves.find((w) => w.state === WaveState.PENDING && w.gates?.requireApproval && !w.approved)
  );
}

function rolloutActions(r: Rollout): Action[] {
  const id = r.id;
  const s = r.state;
  if (TERMINAL_ROLLOUT.has(s)) return [];
  const out: Action[] = [];
  if (s === RolloutState.RUNNING || s === RolloutState.PENDING || s === RolloutState.WAITING_FOR_APPROVAL) {
    out.push({
      action: "pause",
      question: `Pause rollout ${id}?`,
      reason: true,
      run: async (reason) => {
        await rollouts.pauseRollout({ id, reason });
        return `Paused ${id}`;
      },
    });
  }
  if (s === RolloutState.PAUSED) {
    out.push({
      action: "resume",
      question: `Resume rollout ${id}?`,
      reason: false,
      run: async () => {
        await rollouts.resumeRollout({ id });
        return `Resumed ${id}`;
      },
    });
  }
  const aw = s !== RolloutState.ROLLING_BACK ? nextApprovalWave(r) : undefined;
  if (aw) {
    out.push({
      action: "approve",
      question: `Approve wave ${aw.name} (#${aw.index}) of rollout ${id}?`,
      reason: false,
      run: async () => {
        await rollouts.approveRollout({ id, wave: aw.index });
        return `Approved wave ${aw.name} of ${id}`;
      },
    });
  }
  out.push({
    action: "abort",
    question: `Abort rollout ${id}?`,
    reason: true,
    run: async (reason) => {
      await rollouts.abortRollout({ id, reason });
      return `Aborted ${id}`;
    },
  });
  const started = r.waves.some((w) => w.state !== WaveState.PENDING && w.state !== WaveState.WAITING_FOR_APPROVAL);
  if (s !== RolloutState.ROLLING_BACK && started) {
    out.push({
      action: "rollback",
      question: `Roll back rollout ${id}?`,
      reason: true,
      run: async (reason) => {
        await rollouts.rollbackRollout({ id, target: { case: "all", value: true }, reason });
        return `Rolling back ${id}`;
      },
    });
  }
  return out;
}

const ACTION_LABEL: Record<string, string> = {
  pause: "Pause",
  resume: "Resume",
  approve: "Approve",
  abort: "Abort",
  rollback: "Roll back",
};

// useAudit lists the audit records of a rollout, newest first, every 10 s and on refresh().
function useAudit(id: string) {
  const [records, setRecords] = useState<AuditRecord[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let alive = true;
    const load = async () => {
      try {
        const resource = `rollout/${id}`;
        const res = await audit.listAuditRecords({ prefix: resource, pageSize: 200 });
        // The prefix also matches "rollout/<id>-more": keep exactly this rollout's records.
        const mine = res.records.filter((a) => a.resource === resource || a.resource.startsWith(`${resource}/`));
        if (alive) {
          setRecords(mine);
          setError(undefined);
        }
      } catch (e) {
        if (alive) setError(errorText(e));
      }
    };
    void load();
    const t = setInterval(load, 10000);
    return () => {
      alive = false;
      clearInterval(t);
    };
  }, [id, tick]);
  return { records, error, refresh: useCallback(() => setTick((n) => n + 1), []) };
}

export function AuditTable({ records, error }: { records?: AuditRecord[]; error?: string }) {
  return (
    <Section title="Audit">
      <ErrorLine error={error} />
      <table data-testid="audit">
        <thead>
          <tr>
            <th>time</th>
            <th>actor</th>
            <th>action</th>
            <th>result</th>
          </tr>
        </thead>
        <tbody>
          {(records ?? []).map((a) => (
            <tr key={a.sequence.toString()}>
              <td class="time">{isoTime(a.time)}</td>
              <td>
                {a.actor}
                {a.remoteAddress && <span class="muted"> from {a.remoteAddress}</span>}
              </td>
              <td>
                {a.procedure.replace(/^.*\//, "")} <span class="muted">{a.resource}</span>
              </td>
              <td>
                <Badge value={a.code} /> {a.message}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {records && records.length === 0 && <p class="muted">No audited actions on this rollout.</p>}
    </Section>
  );
}

export function RolloutPage({ id, query, me }: { id: string; query: string; me: Me }) {
  const { rollout: r, error } = useRolloutWatch(id, { changesOnly: true, omitMeasurements: true });
  const auditState = useAudit(id);
  const { open, dialog, resultLine } = useActions(auditState.refresh);
  // A stable callback for the memoised rows.
  const openRef = useRef(open);
  openRef.current = open;
  const onAction = useCallback((a: Action) => openRef.current(a), []);
  const filter = useMemo(() => parseFilter(query), [query]);
  const match = useMemo(() => matcher(filter), [filter]);

  if (!r) {
    return (
      <div>
        <h1>{id}</h1>
        <ErrorLine error={error} />
        {!error && <p class="muted">Loading…</p>}
      </div>
    );
  }
  const terminal = TERMINAL_ROLLOUT.has(r.state);
  const controls = me.canControl && !terminal;
  const actions = me.canControl ? rolloutActions(r) : [];
  return (
    <div class="rollout">
      <RolloutHeader r={r} />
      <ErrorLine error={error} />
      {me.canControl && (
        <div class="controls">
          {actions.map((a) => (
            <button type="button" key={a.action} data-action={a.action} class={a.action === "abort" || a.action === "rollback" ? "danger" : ""} onClick={() => open(a)}>
              {ACTION_LABEL[a.action]}
            </button>
          ))}
          {resultLine}
          {dialog}
        </div>
      )}
      <FilterBar filter={filter} counts={countClusters(r, match)} />
      {r.waves.map((w) => (
        <WaveView key={w.index} rid={r.id} w={w} controls={controls} onAction={onAction} match={match} />
      ))}
      {r.skipped.length > 0 && (
        <Section title={`Skipped (${r.skipped.length})`}>
          <table data-testid="skipped">
            <thead>
              <tr>
                <th>cluster</th>
                <th>reason</th>
              </tr>
            </thead>
            <tbody>
              {r.skipped.map((s) => (
                <tr key={s.cluster} data-skipped={s.cluster}>
                  <td>{s.cluster}</td>
                  <td>{s.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Section>
      )}
      <AuditTable records={auditState.records} error={auditState.error} />
    </div>
  );
}
