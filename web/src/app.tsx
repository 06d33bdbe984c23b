// The app shell: sign-in, header with navigation, the stream status and who you are, pages.
import { useEffect, useState } from "preact/hooks";
import { Role } from "../../clients/ts/src/gen/ebbflow/v1/access_pb.js";
import { Code, access, clearToken, errorText, getToken, isCode, onUnauthenticated, setToken } from "./api.js";
import { ClusterPage } from "./cluster.js";
import { roleName } from "./fmt.js";
import { FleetPage, RolloutsPage } from "./lists.js";
import { RolloutPage, type Me } from "./rollout.js";
import { useRoute, useStreamStatus } from "./util.js";

type Auth = { state: "checking" } | { state: "signed-out"; error?: string } | { state: "signed-in"; me: Me };

function meOf(name: string, role: Role): Me {
  return { name, role: roleName(role), canControl: role === Role.OPERATOR || role === Role.ADMIN };
}

function SignIn(props: { error?: string; onSignedIn: (me: Me) => void }) {
  const [token, setTokenInput] = useState("");
  const [error, setError] = useState(props.error);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError("Paste a bearer token or an OIDC ID token.");
      return;
    }
    setBusy(true);
    try {
      const res = await access.whoAmI({}, { headers: { Authorization: `Bearer ${t}` } });
      setToken(t);
      props.onSignedIn(meOf(res.name, res.role));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="signin">
      <form class="card" onSubmit={submit} autoComplete="off">
        <h1>Ebbflow</h1>
        <p class="muted">Sign in with an API token (a static bearer token or an ID token from the configured OIDC issuer).</p>
        <label class="field">
          <span>Token</span>
          <input id="token" type="password" autoFocus value={token} onInput={(e) => setTokenInput((e.target as HTMLInputElement).value)} />
        </label>
        <button id="signin" type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <div class="error" data-testid="signin-error" role="alert" hidden={!error}>
          {error ?? ""}
        </div>
      </form>
    </div>
  );
}

export function App() {
  const [auth, setAuth] = useState<Auth>(() => (getToken() ? { state: "checking" } : { state: "signed-out" }));
  const route = useRoute();
  const stream = useStreamStatus();

  useEffect(() => {
    onUnauthenticated((err) => {
      clearToken();
      setAuth({ state: "signed-out", error: err.message });
    });
    if (!getToken()) return;
    access
      .whoAmI({})
      .then((res) => setAuth({ state: "signed-in", me: meOf(res.name, res.role) }))
      .catch((e) => {
        if (isCode(e, Code.Unauthenticated)) clearToken();
        setAuth({ state: "signed-out", error: errorText(e) });
      });
  }, []);

  if (auth.state === "checking") return <div class="signin muted">Checking your token…</div>;
  if (auth.state === "signed-out") {
    return <SignIn error={auth.error} onSignedIn={(me) => setAuth({ state: "signed-in", me })} />;
  }
  const me = auth.me;
  const page = route.page;
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/rollouts">
          Ebbflow
        </a>
        <nav>
          <a href="#/fleet" class={page === "fleet" ? "active" : ""} data-nav="fleet">
            Fleet
          </a>
          <a href="#/rollouts" class={page !== "fleet" ? "active" : ""} data-nav="rollouts">
            Rollouts
          </a>
        </nav>
        <div class="me">
          <span class={`stream s-${stream}`} title="live update stream of this page">
            <span class="dot" aria-hidden="true" />
            stream <span data-testid="stream-status">{stream}</span>
          </span>
          <span data-testid="whoami">
            {me.name} ({me.role})
          </span>
          <button
            id="signout"
            type="button"
            onClick={() => {
              sessionStorage.clear();
              setAuth({ state: "signed-out" });
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main>
        {route.page === "fleet" && <FleetPage />}
        {route.page === "rollouts" && <RolloutsPage />}
        {route.page === "rollout" && <RolloutPage key={route.id} id={route.id} query={route.query} me={me} />}
        {route.page === "cluster" && <ClusterPage key={`${route.id}/${route.cluster}`} id={route.id} cluster={route.cluster} me={me} />}
      </main>
    </div>
  );
}
