// The rollout page's cluster filter: a name substring, cluster states (any of), "problems
// only". It lives in the route's query (#/rollouts/r1?state=failed,rolled_back&problems=1&q=eu)
// so that it survives a reload and can be shared.
import { useEffect, useRef, useState } from "preact/hooks";
import {
  ClusterRolloutState,
  Verdict,
  type Rollout,
  type RolloutCluster,
} from "../../clients/ts/src/gen/ebbflow/v1/rollout_pb.js";
import { clusterStateName } from "./fmt.js";
import { Badge, replaceQuery, splitHash } from "./util.js";

export interface Filter {
  q: string; // as typed; matched trimmed and case-insensitively
  states: string[]; // cluster state names, sorted, e.g. ["failed", "rolled_back"]
  problems: boolean;
}

export function parseFilter(query: string): Filter {
  const p = new URLSearchParams(query);
  const states = [
    ...new Set(
      p
        .getAll("state")
        .flatMap((s) => s.split(","))
        .map((s) => s.trim().toLowerCase())
        .filter((s) => s !== ""),
    ),
  ].sort();
  const pr = p.get("problems");
  return { q: p.get("q") ?? "", states, problems: pr !== null && pr !== "0" && pr !== "false" };
}

export function filterQuery(f: Filter): string {
  const out: string[] = [];
  if (f.states.length > 0) out.push(`state=${f.states.map(encodeURIComponent).join(",")}`);
  if (f.problems) out.push("problems=1");
  if (f.q !== "") out.push(`q=${encodeURIComponent(f.q)}`);
  return out.join("&");
}

export const filterActive = (f: Filter) => f.q.trim() !== "" || f.states.length > 0 || f.problems;

// updateFilter merges a change into the filter of the current URL (not of a render's closure:
// a debounced name change must not undo a state toggled meanwhile) and writes it back.
function updateFilter(change: Partial<Filter>): void {
  const cur = parseFilter(splitHash(window.location.hash).query);
  const next = { ...cur, ...change };
  next.states = [...new Set(next.states)].sort();
  replaceQuery(filterQuery(next));
}

const PROBLEM_STATES = new Set<ClusterRolloutState>([
  ClusterRolloutState.FAILED,
  ClusterRolloutState.ROLLING_BACK,
  ClusterRolloutState.ROLLED_BACK,
  ClusterRolloutState.UNKNOWN,
  ClusterRolloutState.WAITING_FOR_APPROVAL,
]);

function latestVerdict(c: RolloutCluster): Verdict {
  for (let i = c.results.length - 1; i >= 0; i--) if (c.results[i]!.verdict !== Verdict.UNSPECIFIED) return c.results[i]!.verdict;
  return Verdict.UNSPECIFIED;
}

// isProblem: a cluster someone watching the rollout should look at.
export function isProblem(c: RolloutCluster): boolean {
  if (PROBLEM_STATES.has(c.state) || c.heldPhases.length > 0) return true;
  const v = latestVerdict(c);
  return v === Verdict.REGRESSION || v === Verdict.INCONCLUSIVE;
}

export type Matcher = (c: RolloutCluster) => boolean;

// matcher is the filter's predicate, undefined when no filter is set (everything shows).
export function matcher(f: Filter): Matcher | undefined {
  if (!filterActive(f)) return undefined;
  const q = f.q.trim().toLowerCase();
  const states = f.states.length > 0 ? new Set(f.states) : undefined;
  return (c) =>
    (q === "" || c.cluster.toLowerCase().includes(q)) &&
    (!states || states.has(clusterStateName(c.state))) &&
    (!f.problems || isProblem(c));
}

export interface FilterCounts {
  total: number;
  shown: number;
  problems: number;
  states: [string, number][]; // in the states' lifecycle order
}

export function countClusters(r: Rollout, match: Matcher | undefined): FilterCounts {
  const byState = new Map<ClusterRolloutState, number>();
  let total = 0;
  let shown = 0;
  let problems = 0;
  for (const w of r.waves) {
    for (const c of w.clusters) {
      total++;
      if (!match || match(c)) shown++;
      if (isProblem(c)) problems++;
      byState.set(c.state, (byState.get(c.state) ?? 0) + 1);
    }
  }
  const states = [...byState.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]): [string, number] => [clusterStateName(s), n]);
  return { total, shown, problems, states };
}

export function FilterBar({ filter, counts }: { filter: Filter; counts: FilterCounts }) {
  // The input shows what is typed at once; the URL (and so the rows) follow 150 ms after the
  // last keystroke. sent is the name last written, to tell an outside change of the URL
  // (a pasted link, back/forward) from our own.
  const [text, setText] = useState(filter.q);
  const sent = useRef(filter.q);
  useEffect(() => {
    if (filter.q !== sent.current) {
      sent.current = filter.q;
      setText(filter.q);
    }
  }, [filter.q]);
  useEffect(() => {
    if (text === sent.current) return;
    const t = setTimeout(() => {
      sent.current = text;
      updateFilter({ q: text });
    }, 150);
    return () => clearTimeout(t);
  }, [text]);

  const on = new Set(filter.states);
  // A selected state no cluster is in any more keeps its chip, so that it can be turned off.
  const chips = counts.states.slice();
  for (const s of filter.states) if (!chips.some(([k]) => k === s)) chips.push([s, 0]);
  const active = filterActive(filter) || text.trim() !== "";
  return (
    <div class="card filters" data-testid="cluster-filters" role="search">
      <input
        id="cluster-filter"
        type="text"
        placeholder="filter clusters by name"
        aria-label="filter clusters by name"
        autoComplete="off"
        spellcheck={false}
        value={text}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
        onKeyDown={(e) => {
          if (e.key === "Escape" && text !== "") setText("");
        }}
      />
      <div class="chips" role="group" aria-label="cluster states">
        {chips.map(([s, n]) => (
          <button
            type="button"
            key={s}
            class="fchip"
            data-filter-state={s}
            aria-pressed={on.has(s) ? "true" : "false"}
            title={on.has(s) ? `stop showing only ${s} clusters` : `show ${s} clusters`}
            onClick={() => updateFilter({ states: on.has(s) ? filter.states.filter((x) => x !== s) : [...filter.states, s] })}
          >
            <Badge value={s} /> <span class="n">{n}</span>
          </button>
        ))}
      </div>
      <button
        type="button"
        class="fchip problems"
        data-filter="problems"
        aria-pressed={filter.problems ? "true" : "false"}
        title="failed, unknown, rolling back, rolled back or waiting for approval; a regression or inconclusive verdict; held phases"
        onClick={() => updateFilter({ problems: !filter.problems })}
      >
        problems only <span class="n">{counts.problems}</span>
      </button>
      {active && (
        <button
          type="button"
          class="small"
          data-filter="clear"
          onClick={() => {
            sent.current = "";
            setText("");
            replaceQuery("");
          }}
        >
          clear
        </button>
      )}
      <span class="summary" data-testid="filter-summary">
        showing {counts.shown} of {counts.total} clusters
      </span>
    </div>
  );
}
