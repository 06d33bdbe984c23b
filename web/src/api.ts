// Transport, token handling and the service clients.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AccessService } from "../../clients/ts/src/gen/ebbflow/v1/access_pb.js";
import { AuditService } from "../../clients/ts/src/gen/ebbflow/v1/audit_pb.js";
import { ClusterService } from "../../clients/ts/src/gen/ebbflow/v1/cluster_pb.js";
import { RolloutService } from "../../clients/ts/src/gen/ebbflow/v1/rollout_pb.js";

const TOKEN_KEY = "ebbflow.token";

// The token lives in sessionStorage only: never in a URL, a cookie or localStorage.
export function getToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

let unauthenticatedHandler: (err: ConnectError) => void = () => {};

// onUnauthenticated registers what to do when a call made with the stored token is refused
// with UNAUTHENTICATED (the app goes back to the sign-in screen).
export function onUnauthenticated(fn: (err: ConnectError) => void): void {
  unauthenticatedHandler = fn;
}

const bearer: Interceptor = (next) => async (req) => {
  const explicit = req.header.get("Authorization");
  const stored = getToken();
  if (!explicit && stored) req.header.set("Authorization", `Bearer ${stored}`);
  try {
    return await next(req);
  } catch (e) {
    const err = ConnectError.from(e);
    // A sign-in attempt passes its own header: its failure is the sign-in form's to show.
    if (!explicit && err.code === Code.Unauthenticated) unauthenticatedHandler(err);
    throw e;
  }
};

const transport = createConnectTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [bearer],
});

export const access = createClient(AccessService, transport);
export const clusters = createClient(ClusterService, transport);
export const rollouts = createClient(RolloutService, transport);
export const audit = createClient(AuditService, transport);

export function errorText(e: unknown): string {
  if (e instanceof Error && e.name === "AbortError") return "aborted";
  return ConnectError.from(e).message;
}

export function isCode(e: unknown, code: Code): boolean {
  return ConnectError.from(e).code === code;
}

export { Code, ConnectError };
