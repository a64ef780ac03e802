# Sourced by scripts/cluster-demo.sh and scripts/bank-demo.sh: a work directory removed on
# exit, the processes started into `pids` stopped on exit (SIGTERM, then SIGKILL after
# 5 s), their logs shown if the script fails, and free loopback ports.

pids=()
demo_work=""

demo_cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ $status -ne 0 && -n $demo_work ]]; then
    echo "== demo failed (exit $status); logs:" >&2
    for log in "$demo_work"/*.log; do [[ -f $log ]] && { echo "-- $log" >&2; tail -n 20 "$log" >&2; }; done
  fi
  [[ -n $demo_work ]] && rm -rf "$demo_work"
}

# demo_workdir PREFIX: creates the work directory (printed) and arms the cleanup.
demo_workdir() {
  demo_work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap demo_cleanup EXIT
  trap 'exit 130' INT TERM
}

# demo_free_port: sets demo_port to a port nobody listens on right now and not handed out
# before (good enough on a quiet loopback). Not for $(...): it must update the list here.
demo_used_ports=" "
demo_port=""
demo_free_port() {
  while true; do
    demo_port=$((20000 + RANDOM % 30000))
    [[ $demo_used_ports == *" $demo_port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$demo_port") 2>/dev/null; then
      demo_used_ports+="$demo_port "
      return
    fi
  done
}

# demo_start_coordinators BINARY: starts a 3-node verdict-coordinator group on free
# loopback ports, data and logs in the work directory (demo_workdir first). Sets `cluster`
# (the --cluster value) and `coordinators` (HOST:PORT,... for clients).
cluster=""
coordinators=""
demo_start_coordinators() {
  local binary=$1 id
  cluster=""
  coordinators=""
  for id in 1 2 3; do
    demo_free_port
    cluster+="${cluster:+,}$id=127.0.0.1:$demo_port"
    coordinators+="${coordinators:+,}127.0.0.1:$demo_port"
  done
  echo "== starting 3 coordinators: $cluster (data in $demo_work)"
  for id in 1 2 3; do
    "$binary" --id "$id" --cluster "$cluster" --data-dir "$demo_work/node$id" \
      >"$demo_work/node$id.log" 2>&1 &
    pids+=($!)
  done
}
