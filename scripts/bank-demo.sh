#!/usr/bin/env bash
# The bank demo (README, first command): builds what it needs, starts a 3-node
# verdict-coordinator group and 4 verdict-participant agents on SQLite files, all on
# loopback with free ports and temporary directories, then runs verdict-bank: --init
# creates 1,000 accounts spread over the 4 shards, and 8 clients move money between random
# accounts for 10 seconds, one global 2PC transaction per transfer; then a shorter 3PC
# round. verdict-bank checks that the money adds up and prints one JSON line per round.
# Stops everything with SIGTERM and cleans up on any exit (scripts/demo-lib.sh).
# Usage: scripts/bank-demo.sh [seconds=10] [clients=8]    (env: BUILD_DIR, default ./build)
set -euo pipefail

seconds=${1:-10}
clients=${2:-8}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
bin=$build/bin

# Packages first (idempotent), then the four binaries (incremental: quick when up to date).
"$root/scripts/install-deps.sh"
echo "== building the coordinator, the agent, verdictctl and verdict-bank in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target verdict-coordinator verdict-participant verdictctl \
  verdict-bank >/dev/null

source "$root/scripts/demo-lib.sh"
demo_workdir verdict-bank
work=$demo_work

demo_start_coordinators "$bin/verdict-coordinator"

shards=(shard0 shard1 shard2 shard3)
echo "== starting 4 participant agents on SQLite: ${shards[*]}"
for shard in "${shards[@]}"; do
  demo_free_port; p=$demo_port
  "$bin/verdict-participant" --name "$shard" --listen "127.0.0.1:$p" \
    --coordinators "$coordinators" --data-dir "$work/$shard" \
    --backend sqlite --sqlite-path "$work/$shard.db" >"$work/$shard.log" 2>&1 &
  pids+=($!)
done

echo "== waiting for a leader and for the 4 agents to register"
for _ in $(seq 150); do
  if [[ $("$bin/verdictctl" --coordinators "$coordinators" participants 2>/dev/null | grep -c shard || true) -ge 4 ]]; then
    break
  fi
  sleep 0.2
done
"$bin/verdictctl" --coordinators "$coordinators" status
"$bin/verdictctl" --coordinators "$coordinators" participants

list=$(IFS=,; echo "${shards[*]}")
echo "== verdict-bank --init, then $clients clients for $seconds s under 2PC"
"$bin/verdict-bank" --coordinators "$coordinators" --shards "$list" --accounts 1000 \
  --clients "$clients" --duration "$seconds" --protocol 2pc --init
echo "== the same accounts, $clients clients for $(( (seconds + 1) / 2 )) s under 3PC"
"$bin/verdict-bank" --coordinators "$coordinators" --shards "$list" --accounts 1000 \
  --clients "$clients" --duration "$(( (seconds + 1) / 2 ))" --protocol 3pc
echo "== done"
