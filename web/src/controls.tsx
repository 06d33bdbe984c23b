// Steering controls: every action asks for confirmation in a <dialog>, then calls the API and
// shows the outcome in [data-testid=action-result]. Only rendered for operators and admins.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "./api.js";

export interface Action {
  // data-action of the button, e.g. "pause".
  action: string;
  // The question, e.g. "Pause rollout r1?".
  question: string;
  // Offer a reason input (the request has a reason field).
  reason: boolean;
  // Calls the API; resolves to the result line, e.g. "Paused r1".
  run: (reason: string) => Promise<string>;
}

export interface ActionResult {
  ok: boolean;
  text: string;
}

export function ConfirmDialog(props: { action: Action; onClose: (result?: ActionResult) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => {
      if (d?.open) d.close();
    };
  }, []);
  const confirm = async () => {
    setBusy(true);
    let result: ActionResult;
    try {
      result = { ok: true, text: await props.action.run(reason.trim()) };
    } catch (e) {
      result = { ok: false, text: errorText(e) };
    }
    setBusy(false);
    props.onClose(result);
  };
  return (
    <dialog
      ref={ref}
      class="confirm"
      data-testid="confirm-dialog"
      data-action={props.action.action}
      onCancel={(e) => {
        e.preventDefault();
        if (!busy) props.onClose();
      }}
    >
      <p class="question">{props.action.question}</p>
      {props.action.reason && (
        <label class="field">
          <span>Reason (optional)</span>
          <input
            type="text"
            data-testid="confirm-reason"
            maxLength={1024}
            value={reason}
            onInput={(e) => setReason((e.target as HTMLInputElement).value)}
          />
        </label>
      )}
      <div class="buttons">
        <button type="button" data-testid="cancel" disabled={busy} onClick={() => props.onClose()}>
          Cancel
        </button>
        <button type="button" class="primary" data-testid="confirm" disabled={busy} onClick={confirm}>
          {busy ? "Working…" : "Confirm"}
        </button>
      </div>
    </dialog>
  );
}

// useActions holds the pending confirmation and the last result. open() starts a
// confirmation; after() runs once a call finished (to refresh the audit table, say).
export function useActions(after: () => void) {
  const [pending, setPending] = useState<Action | undefined>(undefined);
  const [result, setResult] = useState<ActionResult | undefined>(undefined);
  const afterRef = useRef(after);
  afterRef.current = after;
  const openRef = useRef((a: Action) => setPending(a));
  const dialog = pending ? (
    <ConfirmDialog
      key={pending.question}
      action={pending}
      onClose={(r) => {
        setPending(undefined);
        if (r) {
          setResult(r);
          afterRef.current();
        }
      }}
    />
  ) : null;
  const resultLine = result ? (
    <div class={`action-result ${result.ok ? "ok" : "failed"}`} data-testid="action-result" role="status">
      {result.text}
    </div>
  ) : null;
  return { open: openRef.current, dialog, resultLine };
}
