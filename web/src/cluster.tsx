// One cluster in one rollout: its results and verdicts, the latency plot, throughput, and the
// timeline of its events.
import { equals } from "@bufbuild/protobuf";
import { useEffect, useRef, useState } from "preact/hooks";
import { Phase } from "../../clients/ts/src/gen/ebbflow/v1/common_pb.js";
import { ProbeKind } from "../../clients/ts/src/gen/ebbflow/v1/measurement_pb.js";
import {
  RolloutClusterSchema,
  type PhaseResult,
  type RolloutCluster,
  type RolloutEvent,
} from "../../clients/ts/src/gen/ebbflow/v1/rollout_pb.js";
import { errorText, rollouts } from "./api.js";
import { useActions } from "./controls.js";
import {
  TERMINAL_ROLLOUT,
  clusterStateName,
  isoTime,
  pValue,
  pct,
  phaseName,
  verdictName,
} from "./fmt.js";
import { LatencyPlot, latencySeries, resultLabel } from "./plot.js";
import { canSkip, latestResult, skipAction, type Me } from "./rollout.js";
import { Badge, ErrorLine, Section, countRender, rolloutHref } from "./util.js";
import { useRolloutWatch } from "./watch.js";
import { rolloutStateName } from "./fmt.js";

const hasThroughput = (r: PhaseResult) => r.measurements.some((m) => m.kind === ProbeKind.THROUGHPUT);

// Results lists the cluster's phase results: one compact row of numbers per result, then a
// full-width row with its percentile verdicts and the judge's reason.
function Results({ c }: { c: RolloutCluster }) {
  countRender();
  const tput = c.results.some((r) => hasThroughput(r) || r.throughputDeltaPercent !== 0);
  const cols = tput ? 10 : 9;
  if (c.results.length === 0) return <p class="muted">No phase results yet.</p>;
  return (
    <table data-testid="results" class="results">
      <thead>
        <tr>
          <th>result</th>
          <th>window</th>
          <th>verdict</th>
          <th class="num">p-value</th>
          <th class="num">p50 Δ</th>
          <th class="num">p99 Δ</th>
          <th class="num">p999 Δ</th>
          {tput && <th class="num">throughput Δ</th>}
          <th>helm</th>
          <th>verified</th>
        </tr>
      </thead>
      {c.results.map((r, i) => {
        const v = verdictName(r.verdict);
        const detail = r.percentiles.length > 0 || r.reason !== "";
        return (
          <tbody key={i} class="result">
            <tr data-result={resultLabel(r)} data-verdict={v} class={detail ? "main" : "main solo"}>
              <td class="name">{resultLabel(r)}</td>
              <td class="time">
                {r.window}/{r.maxWindows || "—"}
              </td>
              <td>
                <Badge value={v} />
              </td>
              <td class="num">{pValue(r.pValue)}</td>
              <td class="num">{pct(r.p50DeltaPercent)}</td>
              <td class="num">{pct(r.p99DeltaPercent)}</td>
              <td class="num">{pct(r.p999DeltaPercent)}</td>
              {tput && <td class="num">{hasThroughput(r) ? pct(r.throughputDeltaPercent) : "—"}</td>}
              <td class="time">
                {r.helmRevisionBefore} → {r.helmRevisionAfter}
              </td>
              <td>{r.verified ? "yes" : <span class="warn">no</span>}</td>
            </tr>
            {detail && (
              <tr class="detail">
                <td colSpan={cols}>
                  {r.percentiles.length > 0 && (
                    <div class="pvs">
                      {r.percentiles.map((p) => (
                        <span key={p.name} class="pv">
                          <b>{p.name}</b> <Badge value={verdictName(p.verdict)} /> {pct(p.deltaPercent)}{" "}
                          <span class="muted">
                            [{pct(p.lowerPercent)}, {pct(p.upperPercent)}] budget {p.budgetPercent}%
                          </span>
                        </span>
                      ))}
                    </div>
                  )}
                  {r.reason && <div class="reason">{r.reason}</div>}
                </td>
              </tr>
            )}
          </tbody>
        );
      })}
    </table>
  );
}

function Throughput({ c }: { c: RolloutCluster }) {
  const rows = c.results.flatMap((r) =>
    r.measurements.filter((m) => m.kind === ProbeKind.THROUGHPUT).map((m) => ({ label: resultLabel(r), m })),
  );
  if (rows.length === 0) {
    return (
      <p class="muted empty" data-testid="throughput">
        No throughput probe in this rollout.
      </p>
    );
  }
  return (
    <table data-testid="throughput">
      <thead>
        <tr>
          <th>result</th>
          <th>window start</th>
          <th>target</th>
          <th class="num">windows</th>
          <th class="num">Mbit/s</th>
          <th class="num">ops/s</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(({ label, m }, i) => (
          <tr key={i}>
            <td>{label}</td>
            <td class="time">{isoTime(m.startTime)}</td>
            <td>{m.target}</td>
            <td class="num">{m.windows}</td>
            <td class="num">{((m.throughputBps * 8) / 1e6).toFixed(1)}</td>
            <td class="num">{m.opsPerSecond ? m.opsPerSecond.toFixed(1) : "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// Phases is the cluster's phase plan with the current phase marked.
function Phases({ c }: { c: RolloutCluster }) {
  return (
    <span class="phases">
      {c.phases.map((p, i) => (
        <span key={i}>
          {i > 0 && <span class="muted"> → </span>}
          <span class={p === c.phase ? "cur" : ""}>{phaseName(p)}</span>
        </span>
      ))}
    </span>
  );
}

function Timeline({ id, cluster, c }: { id: string; cluster: string; c?: RolloutCluster }) {
  const [events, setEvents] = useState<RolloutEvent[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  // Refresh when the watched record changes (by value: every message carries a new object).
  const last = useRef<RolloutCluster | undefined>(undefined);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    if (c && (!last.current || !equals(RolloutClusterSchema, last.current, c))) {
      last.current = c;
      setVersion((v) => v + 1);
    }
  }, [c]);
  useEffect(() => {
    let alive = true;
    rollouts
      .getRolloutHistory({ id })
      .then((res) => {
        if (!alive) return;
        setEvents(res.events.filter((e) => e.cluster === cluster).reverse());
        setError(undefined);
      })
      .catch((e) => alive && setError(errorText(e)));
    return () => {
      alive = false;
    };
  }, [id, cluster, version]);
  return (
    <Section title="Timeline">
      <ErrorLine error={error} />
      <table data-testid="timeline">
        <thead>
          <tr>
            <th>time</th>
            <th>kind</th>
            <th>phase</th>
            <th>actor</th>
            <th>message</th>
          </tr>
        </thead>
        <tbody>
          {(events ?? []).map((e, i) => (
            <tr key={i}>
              <td class="time">{isoTime(e.time)}</td>
              <td class="time">{e.kind}</td>
              <td>{e.phase ? phaseName(e.phase) : ""}</td>
              <td>{e.actor}</td>
              <td class="msg">{e.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}

export function ClusterPage({ id, cluster, me }: { id: string; cluster: string; me: Me }) {
  const { rollout: r, error } = useRolloutWatch(id, { changesOnly: false, omitMeasurements: false, cluster });
  const { open, dialog, resultLine } = useActions(() => {});
  let c: RolloutCluster | undefined;
  let waveName = "";
  for (const w of r?.waves ?? []) {
    const f = w.clusters.find((x) => x.cluster === cluster);
    if (f) {
      c = f;
      waveName = `#${w.index} ${w.name}`;
      break;
    }
  }
  const series = c ? latencySeries(c.results) : [];
  const last = c ? latestResult(c) : undefined;
  const terminal = r ? TERMINAL_ROLLOUT.has(r.state) : true;
  return (
    <div class="cluster-page">
      <div class="crumbs">
        <a href={rolloutHref(id)}>← rollout {id}</a>
      </div>
      <h1>
        {cluster}{" "}
        {r && (
          <span class="sub">
            in {id} <Badge value={rolloutStateName(r.state)} testid="rollout-state" />
          </span>
        )}
      </h1>
      <ErrorLine error={error} />
      {!r && !error && <p class="muted">Loading…</p>}
      {c && (
        <>
          <div class="card record" data-cluster-record={c.cluster} data-phase={phaseName(c.phase)} data-state={clusterStateName(c.state)} data-verdict={last ? verdictName(last.verdict) : ""}>
            <dl class="kv kv2">
              <dt>wave</dt>
              <dd>{waveName}</dd>
              <dt>phases</dt>
              <dd>{c.phases.length > 0 ? <Phases c={c} /> : "—"}</dd>
              <dt>phase</dt>
              <dd>
                {phaseName(c.phase)}
                {c.phase === Phase.KPR && c.kprBatch > 0 && <span class="muted"> · batch {c.kprBatch}</span>}
              </dd>
              <dt>last report</dt>
              <dd class="time">{isoTime(c.lastReportTime)}</dd>
              <dt>state</dt>
              <dd>
                <Badge value={clusterStateName(c.state)} testid="cluster-state" /> {last && verdictName(last.verdict) && <Badge value={verdictName(last.verdict)} />}
              </dd>
              <dt>pre-rollout helm</dt>
              <dd>{c.preRolloutHelmRevision || "—"}</dd>
              {c.kprBatch > 0 && c.phase !== Phase.KPR && (
                <>
                  <dt class="wide">kpr batch</dt>
                  <dd class="wide">{c.kprBatch}</dd>
                </>
              )}
              {c.heldPhases.length > 0 && (
                <>
                  <dt class="wide">held</dt>
                  <dd class="wide held">
                    {c.heldPhases.map(phaseName).join(", ")}: {c.heldReason}
                  </dd>
                </>
              )}
              <dt class="wide">reason</dt>
              <dd class="wide reason">{c.reason || "—"}</dd>
            </dl>
            {me.canControl && !terminal && canSkip(c) && (
              <div class="controls">
                <button type="button" data-action="skip" data-cluster={c.cluster} onClick={() => open(skipAction(id, c!.cluster))}>
                  Skip
                </button>
                {resultLine}
                {dialog}
              </div>
            )}
            {me.canControl && !(!terminal && canSkip(c)) && resultLine}
          </div>
          <Section title="Latency" aside={<span class="muted small">log scale · quantiles on a nines axis · merged over probes and windows</span>}>
            <LatencyPlot series={series} />
          </Section>
          <Section title="Phase results">
            <Results c={c} />
          </Section>
          <Section title="Throughput">
            <Throughput c={c} />
          </Section>
        </>
      )}
      <Timeline id={id} cluster={cluster} c={c} />
    </div>
  );
}
