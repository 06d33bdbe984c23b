// useRolloutWatch keeps a rollout live with RolloutService.WatchRollout: it merges partial
// messages into the state it holds, reconnects with backoff while the rollout is not terminal
// and reports the stream's status to the footer.
import { useEffect, useState } from "preact/hooks";
import type { Rollout, Wave } from "../../clients/ts/src/gen/ebbflow/v1/rollout_pb.js";
import { Code, errorText, isCode, rollouts } from "./api.js";
import { TERMINAL_ROLLOUT } from "./fmt.js";
import { markMessageRendered, setStreamStatus } from "./util.js";

export interface WatchOptions {
  changesOnly: boolean;
  omitMeasurements: boolean;
  cluster?: string;
}

// mergePartial applies a partial message: the rollout header and every wave header come in
// full; each wave's clusters hold only the records that changed, which replace the ones held
// by cluster id (records are never removed). Unchanged records keep their identity, so the
// memoised views of them do not re-render.
export function mergePartial(prev: Rollout, next: Rollout): Rollout {
  const byIndex = new Map<number, Wave>();
  for (const w of prev.waves) byIndex.set(w.index, w);
  const waves = next.waves.map((w, i) => {
    const old = byIndex.get(w.index) ?? prev.waves[i];
    if (!old) return w;
    if (w.clusters.length === 0) return { ...w, clusters: old.clusters };
    const pos = new Map<string, number>();
    old.clusters.forEach((c, j) => pos.set(c.cluster, j));
    const clusters = old.clusters.slice();
    for (const c of w.clusters) {
      const j = pos.get(c.cluster);
      if (j === undefined) clusters.push(c);
      else clusters[j] = c;
    }
    return { ...w, clusters };
  });
  return { ...next, waves };
}

const FATAL = [Code.NotFound, Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated];

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

export function useRolloutWatch(id: string, opts: WatchOptions): { rollout?: Rollout; error?: string } {
  const [rollout, setRollout] = useState<Rollout | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const { changesOnly, omitMeasurements, cluster } = opts;

  useEffect(() => {
    const ctl = new AbortController();
    let state: Rollout | undefined;
    let backoff = 1000;
    setRollout(undefined);
    setError(undefined);
    setStreamStatus("connecting");

    (async () => {
      while (!ctl.signal.aborted) {
        try {
          let first = true;
          const stream = rollouts.watchRollout(
            { id, changesOnly, omitMeasurements, cluster: cluster ?? "" },
            { signal: ctl.signal },
          );
          for await (const msg of stream) {
            const r = msg.rollout;
            if (!r) continue;
            // The first message of every (re)connection carries the whole rollout: replace.
            state = first || !msg.partial || !state ? r : mergePartial(state, r);
            first = false;
            backoff = 1000;
            setRollout(state);
            setError(undefined);
            setStreamStatus("live");
            markMessageRendered();
          }
        } catch (e) {
          if (ctl.signal.aborted) return;
          setError(errorText(e));
          if (FATAL.some((c) => isCode(e, c))) {
            setStreamStatus("error");
            return;
          }
        }
        if (ctl.signal.aborted) return;
        if (state && TERMINAL_ROLLOUT.has(state.state)) {
          setStreamStatus("ended");
          return;
        }
        setStreamStatus("reconnecting");
        await sleep(backoff, ctl.signal);
        backoff = Math.min(backoff * 2, 10000);
      }
    })();

    return () => {
      ctl.abort();
      setStreamStatus("idle");
    };
  }, [id, changesOnly, omitMeasurements, cluster]);

  return { rollout, error };
}
