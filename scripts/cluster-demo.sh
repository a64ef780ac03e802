#!/usr/bin/env bash
# Quick start: brings up a 3-node verdict-coordinator group on loopback (free ports,
# temporary data dirs), shows its status, records a few decisions with verdictctl, shows
# the status again and stops the nodes with SIGTERM. Cleans up on any exit.
# Usage: scripts/cluster-demo.sh        (env: BUILD_DIR, default ./build)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
coordinator=$build/bin/verdict-coordinator
ctl=$build/bin/verdictctl

if [[ ! -x $coordinator || ! -x $ctl ]]; then
  echo "== building verdict-coordinator and verdictctl in $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$build" -j2 --target verdict-coordinator verdictctl
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/verdict-demo.XXXXXX")
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ $status -ne 0 ]]; then
    echo "== demo failed (exit $status); node logs:" >&2
    for log in "$work"/node*.log; do [[ -f $log ]] && { echo "-- $log" >&2; tail -n 20 "$log" >&2; }; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nobody listens on right now (good enough on a quiet loopback).
free_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

ports=()
while [[ ${#ports[@]} -lt 3 ]]; do
  p=$(free_port)
  [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
done
cluster="1=127.0.0.1:${ports[0]},2=127.0.0.1:${ports[1]},3=127.0.0.1:${ports[2]}"
coordinators="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"

echo "== starting 3 coordinators: $cluster (data in $work)"
for id in 1 2 3; do
  "$coordinator" --id "$id" --cluster "$cluster" --data-dir "$work/node$id" \
    >"$work/node$id.log" 2>&1 &
  pids+=($!)
done

echo "== waiting for a leader"
for _ in $(seq 150); do
  if "$ctl" --coordinators "$coordinators" status 2>/dev/null | grep -q '^leader: node'; then break; fi
  sleep 0.2
done
"$ctl" --coordinators "$coordinators" status

echo "== deciding a few transactions"
"$ctl" --coordinators "$coordinators" decide demo-tx-1 --commit --participants shard-a,shard-b
"$ctl" --coordinators "$coordinators" decide demo-tx-2 --abort --participants shard-a,shard-c
"$ctl" --coordinators "$coordinators" decide demo-tx-3 --commit --participants shard-b
echo "== a second decision for demo-tx-1 returns the first (first decision wins)"
"$ctl" --coordinators "$coordinators" decide demo-tx-1 --abort
echo "== reading back"
"$ctl" --coordinators "$coordinators" get demo-tx-2

echo "== status again"
"$ctl" --coordinators "$coordinators" status

echo "== stopping the cluster (SIGTERM)"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
failed=0
for pid in "${pids[@]}"; do
  if ! wait "$pid"; then failed=1; fi
done
pids=()
if [[ $failed -ne 0 ]]; then
  echo "a node did not exit cleanly" >&2
  exit 1
fi
echo "== done: every node stopped cleanly"
