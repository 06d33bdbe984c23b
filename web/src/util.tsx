// Small shared pieces: a memo component, one shared clock, the stream status store, hash
// routing, badges and the benchmark instrumentation.
import { Component, type ComponentChildren, type FunctionComponent } from "preact";
import { useEffect, useState } from "preact/hooks";

// memo wraps a function component so it re-renders only when a prop changes identity
// (shallow ===), like React.memo, without pulling in preact/compat.
export function memo<P extends object>(fn: FunctionComponent<P>): FunctionComponent<P> {
  class Memo extends Component<P> {
    shouldComponentUpdate(next: P): boolean {
      const a = this.props as Record<string, unknown>;
      const b = next as Record<string, unknown>;
      for (const k in a) if (k !== "children" && !(k in b)) return true;
      for (const k in b) if (k !== "children" && a[k] !== b[k]) return true;
      return false;
    }
    render(props: P) {
      return fn(props);
    }
  }
  return Memo as unknown as FunctionComponent<P>;
}

// One clock for every ticking label: a single interval, started while anything listens.
type Listener = (now: number) => void;
const clockListeners = new Set<Listener>();
let clockTimer: ReturnType<typeof setInterval> | undefined;

export function useNow(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    clockListeners.add(setNow);
    if (clockTimer === undefined) {
      clockTimer = setInterval(() => {
        const t = Date.now();
        for (const l of clockListeners) l(t);
      }, 1000);
    }
    return () => {
      clockListeners.delete(setNow);
      if (clockListeners.size === 0 && clockTimer !== undefined) {
        clearInterval(clockTimer);
        clockTimer = undefined;
      }
    };
  }, []);
  return now;
}

// Stream status shown in the footer: "idle" when no page streams, else "connecting",
// "live", "reconnecting", "ended" (terminal rollout) or "error".
export type StreamStatus = "idle" | "connecting" | "live" | "reconnecting" | "ended" | "error";
let streamStatus: StreamStatus = "idle";
const statusListeners = new Set<(s: StreamStatus) => void>();

export function setStreamStatus(s: StreamStatus): void {
  if (s === streamStatus) return;
  streamStatus = s;
  for (const l of statusListeners) l(s);
}

export function useStreamStatus(): StreamStatus {
  const [s, set] = useState(streamStatus);
  useEffect(() => {
    statusListeners.add(set);
    set(streamStatus);
    return () => void statusListeners.delete(set);
  }, []);
  return s;
}

// Routes: #/fleet, #/rollouts (default), #/rollouts/<id>, #/rollouts/<id>/clusters/<cluster>.
// A route may carry a query after "?" (#/rollouts/r1?state=failed&q=eu): the rollout page
// keeps its cluster filter there; the other pages ignore it.
export type Route =
  | { page: "fleet" }
  | { page: "rollouts" }
  | { page: "rollout"; id: string; query: string }
  | { page: "cluster"; id: string; cluster: string };

// splitHash splits a fragment into its path ("rollouts/r1") and its query ("state=failed").
export function splitHash(hash: string): { path: string; query: string } {
  const h = hash.replace(/^#\/?/, "");
  const i = h.indexOf("?");
  return i < 0 ? { path: h, query: "" } : { path: h.slice(0, i), query: h.slice(i + 1) };
}

export function parseRoute(hash: string): Route {
  const { path, query } = splitHash(hash);
  const parts = path.split("/").filter((p) => p !== "").map(safeDecode);
  if (parts[0] === "fleet" && parts.length === 1) return { page: "fleet" };
  if (parts[0] === "rollouts") {
    if (parts.length === 2) return { page: "rollout", id: parts[1]!, query };
    if (parts.length === 4 && parts[2] === "clusters") return { page: "cluster", id: parts[1]!, cluster: parts[3]! };
  }
  return { page: "rollouts" };
}

// replaceQuery swaps the current route's query in place (history.replaceState: no new history
// entry, no hashchange) and tells useRoute.
const ROUTE_EVENT = "ebbflow:route";
export function replaceQuery(query: string): void {
  const { path } = splitHash(window.location.hash);
  const hash = `#/${path}${query ? `?${query}` : ""}`;
  if (hash === window.location.hash) return;
  history.replaceState(history.state, "", hash);
  window.dispatchEvent(new Event(ROUTE_EVENT));
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener("hashchange", on);
    window.addEventListener(ROUTE_EVENT, on);
    return () => {
      window.removeEventListener("hashchange", on);
      window.removeEventListener(ROUTE_EVENT, on);
    };
  }, []);
  return route;
}

export const rolloutHref = (id: string) => `#/rollouts/${encodeURIComponent(id)}`;
export const clusterHref = (id: string, cluster: string) =>
  `#/rollouts/${encodeURIComponent(id)}/clusters/${encodeURIComponent(cluster)}`;

// Badge colours by name: the CSS maps b-<name> to a tone.
export function Badge(props: { value: string; testid?: string; title?: string }) {
  const v = props.value || "none";
  return (
    <span class={`badge b-${v}`} data-testid={props.testid} title={props.title}>
      {props.value || "—"}
    </span>
  );
}

export function ErrorLine(props: { error: string | undefined }) {
  if (!props.error) return null;
  return (
    <div class="error" data-testid="error" role="alert">
      {props.error}
    </div>
  );
}

export function Section(props: { title: ComponentChildren; children: ComponentChildren; aside?: ComponentChildren }) {
  return (
    <section class="card">
      <header class="card-h">
        <h2>{props.title}</h2>
        {props.aside}
      </header>
      {props.children}
    </section>
  );
}

// Benchmark instrumentation: renders counts renders of the per-cluster views (rollout page
// rows, the cluster page's record view); messages and lastUpdateMs move once a WatchRollout
// message has been applied and the frame after it rendered.
export interface EbbflowStats {
  renders: number;
  lastUpdateMs: number;
  messages: number;
}
declare global {
  interface Window {
    __ebbflow: EbbflowStats;
  }
}
window.__ebbflow = { renders: 0, lastUpdateMs: 0, messages: 0 };

export function countRender(): void {
  window.__ebbflow.renders++;
}

export function markMessageRendered(): void {
  requestAnimationFrame(() => {
    window.__ebbflow.lastUpdateMs = performance.now();
    window.__ebbflow.messages++;
  });
}
