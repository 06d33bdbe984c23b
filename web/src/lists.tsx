// The Fleet and Rollouts pages: tables refreshed every 5 s.
import { useEffect, useState } from "preact/hooks";
import type { Cluster } from "../../clients/ts/src/gen/ebbflow/v1/cluster_pb.js";
import { ClusterRolloutState, WaveState, type Rollout } from "../../clients/ts/src/gen/ebbflow/v1/rollout_pb.js";
import { clusters as clusterApi, errorText, rollouts as rolloutApi } from "./api.js";
import { age, isoTime, livenessName, phaseName, rolloutStateName } from "./fmt.js";
import { Badge, ErrorLine, rolloutHref, useNow } from "./util.js";

// usePoll runs load now and every intervalMs while deps hold.
function usePoll<T>(load: () => Promise<T>, intervalMs: number, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const d = await load();
        if (!alive) return;
        setData(d);
        setError(undefined);
      } catch (e) {
        if (alive) setError(errorText(e));
      }
      if (alive) timer = setTimeout(run, intervalMs);
    };
    void run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, deps);
  return { data, error };
}

const uniq = (xs: string[]) => [...new Set(xs.filter((x) => x !== ""))].sort();

function Inventory({ c }: { c: Cluster }) {
  const inv = c.inventory;
  if (!inv) return <span class="muted">not reported</span>;
  const ready = inv.nodes.filter((n) => n.ready).length;
  const kernels = uniq(inv.nodes.map((n) => n.kernelVersion));
  const nics = uniq(inv.nodes.map((n) => n.nicDriver));
  return (
    <div class="inv">
      <div>
        <b>{inv.nodes.length}</b> nodes{ready !== inv.nodes.length && <span class="warn"> ({ready} ready)</span>} · k8s {inv.kubernetesVersion || "?"}
      </div>
      <div>kernels {kernels.join(", ") || "?"}</div>
      <div>NIC {nics.join(", ") || "?"}</div>
      <div>
        cilium {inv.ciliumImageVersion || "—"} / chart {inv.ciliumChartVersion || "—"}
        {inv.helmRevision > 0 && <span class="muted"> (rev {inv.helmRevision})</span>}
      </div>
    </div>
  );
}

export function FleetPage() {
  const [input, setInput] = useState("");
  const [selector, setSelector] = useState("");
  const now = useNow();
  const { data, error } = usePoll(
    async () => {
      const all: Cluster[] = [];
      let pageToken = "";
      do {
        const res = await clusterApi.listClusters({ selector, pageSize: 1000, pageToken });
        all.push(...res.clusters);
        pageToken = res.nextPageToken;
      } while (pageToken);
      return all;
    },
    5000,
    [selector],
  );
  return (
    <div>
      <div class="page-h">
        <h1>Fleet</h1>
        <div class="toolbar">
          <input
            id="selector"
            type="text"
            placeholder="label selector, e.g. env=prod,region in (eu,us)"
            value={input}
            onInput={(e) => setInput((e.target as HTMLInputElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Enter") setSelector(input.trim());
            }}
          />
          <button id="apply-selector" type="button" onClick={() => setSelector(input.trim())}>
            Apply
          </button>
        </div>
      </div>
      <ErrorLine error={error} />
      <table data-testid="fleet">
        <thead>
          <tr>
            <th>cluster</th>
            <th>labels</th>
            <th>liveness</th>
            <th>cordoned</th>
            <th>inventory</th>
            <th>rollouts</th>
          </tr>
        </thead>
        <tbody>
          {(data ?? []).map((c) => (
            <tr key={c.name} data-cluster={c.name}>
              <td class="name">
                {c.name}
                {c.agentVersion && <div class="muted">agent {c.agentVersion}</div>}
              </td>
              <td>
                {Object.entries(c.labels)
                  .sort()
                  .map(([k, v]) => (
                    <span key={k} class="chip">
                      {k}={v}
                    </span>
                  ))}
              </td>
              <td>
                <Badge value={livenessName(c.liveness)} />
                <div class="muted" title={isoTime(c.lastHeartbeatTime)}>
                  {c.lastHeartbeatTime ? age(c.lastHeartbeatTime, now) : "never heard"}
                </div>
              </td>
              <td>{c.cordoned ? <span class="warn">yes{c.cordonReason && `: ${c.cordonReason}`}</span> : "no"}</td>
              <td>
                <Inventory c={c} />
              </td>
              <td>
                {c.rollouts.map((p) => (
                  <div key={p.rollout}>
                    <a href={rolloutHref(p.rollout)} data-rollout-link={p.rollout}>
                      {p.rollout}: {phaseName(p.phase)} ({p.state})
                    </a>
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.length === 0 && <p class="muted">No cluster matches.</p>}
    </div>
  );
}

function progress(r: Rollout) {
  let ok = 0;
  let failed = 0;
  let rolledBack = 0;
  let total = 0;
  for (const w of r.waves) {
    for (const c of w.clusters) {
      total++;
      if (c.state === ClusterRolloutState.SUCCEEDED) ok++;
      else if (c.state === ClusterRolloutState.FAILED || c.state === ClusterRolloutState.UNKNOWN) failed++;
      else if (c.state === ClusterRolloutState.ROLLED_BACK || c.state === ClusterRolloutState.ROLLING_BACK) rolledBack++;
    }
  }
  const wavesDone = r.waves.filter((w) => w.state === WaveState.SUCCEEDED).length;
  return { ok, failed, rolledBack, total, wavesDone };
}

export function RolloutsPage() {
  const now = useNow();
  const { data, error } = usePoll(
    async () => {
      const all: Rollout[] = [];
      let pageToken = "";
      for (let i = 0; i < 50; i++) {
        const res = await rolloutApi.listRollouts({ pageSize: 100, pageToken, omitMeasurements: true });
        all.push(...res.rollouts);
        pageToken = res.nextPageToken;
        if (!pageToken) break;
      }
      // Newest first.
      return all.sort((a, b) => Number((b.createTime?.seconds ?? 0n) - (a.createTime?.seconds ?? 0n)));
    },
    5000,
    [],
  );
  return (
    <div>
      <div class="page-h">
        <h1>Rollouts</h1>
      </div>
      <ErrorLine error={error} />
      <table data-testid="rollouts">
        <thead>
          <tr>
            <th>rollout</th>
            <th>state</th>
            <th>profile</th>
            <th class="num">waves</th>
            <th class="num">clusters ok / failed / rolled back</th>
            <th>created by</th>
            <th>age</th>
          </tr>
        </thead>
        <tbody>
          {(data ?? []).map((r) => {
            const p = progress(r);
            return (
              <tr key={r.id} data-rollout={r.id}>
                <td class="name">
                  <a href={rolloutHref(r.id)}>{r.id}</a>
                </td>
                <td>
                  <Badge value={rolloutStateName(r.state)} />
                </td>
                <td>
                  {r.spec?.profile}@{r.profileRevision.toString()}
                </td>
                <td class="num" data-testid="waves">
                  {p.wavesDone} / {r.waves.length}
                </td>
                <td class="num" data-testid="clusters">
                  <span class="ok">{p.ok}</span> / <span class={p.failed ? "bad" : ""}>{p.failed}</span> /{" "}
                  <span class={p.rolledBack ? "warn" : ""}>{p.rolledBack}</span> <span class="muted">of {p.total}</span>
                </td>
                <td>{r.createdBy}</td>
                <td title={isoTime(r.createTime)}>{age(r.createTime, now)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {data && data.length === 0 && <p class="muted">No rollouts yet.</p>}
    </div>
  );
}
