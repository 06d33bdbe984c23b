#!/usr/bin/env bash
# The local demo: a 3-node controller on 127.0.0.1, example profiles and a registered fleet
# driven through fleetctl, a rollout plan, and a leader failover that loses nothing.
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

say "A fleet: clusters registered with labels (agents would add their inventory)"
for c in eu-1:eu:1 eu-2:eu:2 us-1:us:1 us-2:us:2 us-3:us:3; do
  IFS=: read -r name region ring <<<"$c"
  "$BIN/fleetctl" cluster register "$name" -l env=prod,region="$region",ring="$ring" -o json >/dev/null
done
run "$BIN/fleetctl" cluster cordon us-3 --reason "change freeze"
run "$BIN/fleetctl" cluster list -l env=prod

say "Dry run: which clusters a rollout would hit, in which wave, and what preflight says"
run "$BIN/fleetctl" rollout plan --profile eks --selector env=prod --canary 1 --wave-size 2 || true

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
run "$BIN/fleetctl" cluster label eu-1 tier=gold

say "Where to look"
cat <<TXT
  API (Connect/gRPC/gRPC-Web): $EBBFLOW_SERVER   e.g. fleetctl --server $EBBFLOW_SERVER cluster list
  Metrics:                     $EBBFLOW_SERVER/metrics
  Logs and data:               $WORK (kept when run with KEEP=1)
  Rollouts: the engine is not in this build yet; 'fleetctl rollout create' says so.
The demo stops everything it started on exit.
TXT
