#!/usr/bin/env bash
# The local demo: a 3-node controller on 127.0.0.1, example profiles, two real local Kubernetes
# clusters with their agents, a rollout plan with real preflight, and a leader failover that
# loses nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ebbflow-demo.XXXXXX")
KEEP=${KEEP:-0}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "logs and data kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

start_node() { # id [join-url]
  local id=$1 join=${2:-}
  mkdir -p "$WORK/$id"
  "$BIN/fleet-controller" --node-id "$id" --data-dir "$WORK/$id" --listen 127.0.0.1:0 --raft-listen 127.0.0.1:0 \
    ${join:+--join "$join"} --ready-file "$WORK/$id.addr" --heartbeat-interval 2s >"$WORK/$id.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do [ -s "$WORK/$id.addr" ] && break; sleep 0.1; done
  [ -s "$WORK/$id.addr" ] || { echo "$id did not start; log:"; cat "$WORK/$id.log"; exit 1; }
}

say "Starting a 3-node fleet-controller (Raft on bbolt) on 127.0.0.1"
start_node ctl-1
URL1=http://$(cat "$WORK/ctl-1.addr")
start_node ctl-2 "$URL1"
start_node ctl-3 "$URL1"
export EBBFLOW_SERVER=$URL1
export EBBFLOW_CONFIG=$WORK/fleetctl.yaml
run "$BIN/fleetctl" controller status

say "Tuning profiles: validate, apply, revise, diff"
run "$BIN/fleetctl" profile validate -f deploy/profiles/eks.yaml
run "$BIN/fleetctl" profile apply -f deploy/profiles/eks.yaml
run "$BIN/fleetctl" profile apply -f deploy/profiles/bare-metal.yaml
sed 's/namespaces: \[checkout, payments\]/namespaces: [checkout, payments, search]/' deploy/profiles/eks.yaml >"$WORK/eks-v2.yaml"
run "$BIN/fleetctl" profile apply -f "$WORK/eks-v2.yaml"
run "$BIN/fleetctl" profile diff eks
run "$BIN/fleetctl" profile list

say "A fleet: two real local Kubernetes clusters (kubebox) with a fleet-agent each, plus two registered by hand"
"$BIN/kubebox" -build >/dev/null 2>"$WORK/kubebox-build.log" || { cat "$WORK/kubebox-build.log"; exit 1; }
start_cluster() { # name kernels
  local name=$1 kernels=$2
  "$BIN/kubebox" -dir "$WORK/$name" -kernels "$kernels" -nic-driver ena -kube-proxy \
    -cilium-chart deploy/testdata/charts/cilium -kubeconfig-out "$WORK/$name.kubeconfig" >"$WORK/$name.log" 2>&1 &
  pids+=($!)
}
# One real latency target per cluster, reached by the name the rollout's probe uses.
for name in kb-modern kb-legacy; do
  "$BIN/latency-target" --delay 2ms --ready-file "$WORK/$name-target.addr" >"$WORK/$name-target.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$WORK/$name-target.addr" ] && break; sleep 0.1; done
done
start_cluster kb-modern "6.8.0-1015-aws,6.8.0-1015-aws"
start_cluster kb-legacy "6.1.112-124.190.amzn2023.x86_64,5.4.0-150-generic"
for name in kb-modern kb-legacy; do
  for _ in $(seq 1 600); do [ -s "$WORK/$name.kubeconfig" ] && break; sleep 0.1; done
  [ -s "$WORK/$name.kubeconfig" ] || { echo "$name did not start; log:"; tail -30 "$WORK/$name.log"; exit 1; }
  "$BIN/fleet-agent" --controller "$URL1" --kubeconfig "$WORK/$name.kubeconfig" --cluster-id "$name" \
    --labels "env=prod,region=eu,ring=$([ "$name" = kb-modern ] && echo 0 || echo 1)" --log-level warn \
    --resolve "echo.demo:8080=$(cat "$WORK/$name-target.addr")" >"$WORK/$name-agent.log" 2>&1 &
  pids+=($!)
done
"$BIN/fleetctl" cluster register eu-9 -l env=prod,region=eu,ring=2 -o json >/dev/null
"$BIN/fleetctl" cluster register us-3 -l env=prod,region=us -o json >/dev/null
run "$BIN/fleetctl" cluster cordon us-3 --reason "change freeze"
for _ in $(seq 1 300); do
  [ "$("$BIN/fleetctl" cluster list -l env=prod | grep -c ' alive ')" = 2 ] && break; sleep 0.1
done
run "$BIN/fleetctl" cluster list -l env=prod
run "$BIN/fleetctl" cluster get kb-legacy

say "Dry run: which clusters a rollout would hit, in which wave, and what preflight says"
run "$BIN/fleetctl" rollout plan --profile eks --selector env=prod --canary 1 --wave-size 2 || true

say "A staged rollout: canary wave, then the rest; each phase measured against the baseline; kb-legacy regresses at l7"
run "$BIN/fleetctl" profile apply -f e2e/demo-profile.yaml
cat >"$WORK/rollout.yaml" <<YAML
apiVersion: ebbflow.io/v1
kind: Rollout
metadata: {name: demo}
spec:
  profile: local-tuning
  clusterSelector: env=prod,region=eu
  sortLabel: ring
  automatic:
    canaryCount: 1
    waveSize: 2
    canaryGates: {soakTime: 2s}
    gates: {maxFailuresCount: 1, soakTime: 1s}
  phaseTimeout: 300s
  budgets:
    - {maxP50IncreasePercent: 25, maxP99IncreasePercent: 60, alpha: 0.01, minSamples: 100}
  probes:
    windows: 3
    warmup: 0.2s
    probes:
      - {kind: PROBE_KIND_HTTP, target: "http://echo.demo:8080/", rate: 200, duration: 1s}
YAML
run "$BIN/fleetctl" rollout create -f "$WORK/rollout.yaml"
# Once kb-legacy's baseline is measured, its target gets slower: a real, measured regression.
(
  for _ in $(seq 1 1500); do
    if "$BIN/fleetctl" rollout history demo 2>/dev/null | grep -q 'kb-legacy.*baseline MEASURED'; then
      port=$(cut -d: -f2 <"$WORK/kb-legacy-target.addr")
      exec 3<>"/dev/tcp/127.0.0.1/$port"
      printf 'PUT /delay?d=4ms HTTP/1.0\r\n\r\n' >&3
      cat <&3 >"$WORK/regression.log"
      exit 0
    fi
    sleep 0.2
  done
) &
pids+=($!)
run "$BIN/fleetctl" rollout status demo --watch || echo "(the rollout did not succeed: exit $?)"
run "$BIN/fleetctl" rollout history demo

say "Failover: stop the leader; the fleet's state survives and writes go on"
leader=$("$BIN/fleetctl" controller status -o json | sed -n 's/.*"leaderId": *"\(.*\)".*/\1/p')
echo "leader is $leader; stopping it"
idx=${leader#ctl-}
kill "${pids[$((idx-1))]}"
for id in ctl-1 ctl-2 ctl-3; do [ "$id" != "$leader" ] && survivor=$id; done
export EBBFLOW_SERVER=http://$(cat "$WORK/$survivor.addr")
for _ in $(seq 1 200); do
  now=$("$BIN/fleetctl" controller status -o json 2>/dev/null | sed -n 's/.*"leaderId": *"\(.*\)".*/\1/p')
  [ -n "$now" ] && [ "$now" != "$leader" ] && break
  sleep 0.1
done
run "$BIN/fleetctl" controller status
run "$BIN/fleetctl" profile history eks
run "$BIN/fleetctl" cluster label eu-9 tier=gold

say "Where to look"
cat <<TXT
  API (Connect/gRPC/gRPC-Web): $EBBFLOW_SERVER   e.g. fleetctl --server $EBBFLOW_SERVER cluster list
  Metrics:                     $EBBFLOW_SERVER/metrics
  Logs and data:               $WORK (kept when run with KEEP=1)
  Rollouts: fleetctl rollout create -f FILE, then fleetctl rollout status ID --watch
The demo stops everything it started on exit.
TXT
