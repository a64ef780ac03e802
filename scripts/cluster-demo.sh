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

source "$root/scripts/demo-lib.sh"
demo_workdir verdict-demo

demo_start_coordinators "$coordinator"

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
