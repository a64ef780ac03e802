#!/usr/bin/env bash
# Runs verdict-bench's PostgreSQL agent section (with its pgbench anchor) against
# verdict-thin-agent instead of verdict-participant: the upper bound of an event-driven
# agent with the agent's round trips (thin_agent.cc says what it leaves out).
# Usage: bench/thin_agent/run.sh [BUILD_DIR=build] [verdict-bench flags...]
# e.g.   bench/thin_agent/run.sh build --agent-clients 8,32 --duration 8
set -euo pipefail
build=$(cd "${1:-build}" && pwd); shift || true
[ -x "$build/bin/verdict-thin-agent" ] && [ -x "$build/bin/verdict-bench" ] ||
  { echo "build verdict-bench and verdict-thin-agent in $build first" >&2; exit 2; }
dir=$(mktemp -d /tmp/verdict-thin-agent.XXXXXX)
trap 'rm -rf "$dir"' EXIT
ln -s "$build/bin/verdict-thin-agent" "$dir/verdict-participant"
cd /tmp && "$build/bin/verdict-bench" --only agent_pg --bin-dir "$dir" "$@"
