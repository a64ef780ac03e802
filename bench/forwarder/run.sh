#!/usr/bin/env bash
# What one extra process in the path costs PostgreSQL two-phase throughput on this machine:
# the anchor's workload (pg-2pc-ceiling.sh: one-row UPDATE, PREPARE TRANSACTION, COMMIT
# PREPARED, CLIENTS pgbench clients on each of two databases at once) run directly, then
# through forwarder.c (a process that only copies bytes) in its epoll and its
# thread-per-connection form, then directly again. Run as root (the server runs as postgres).
# Usage: bench/forwarder/run.sh [seconds=8] [clients-per-database=8]
# Prints one line per setup: two tps figures (one per database) and their ratio to direct.
set -euo pipefail
secs=${1:-8}; clients=${2:-8}
here=$(cd "$(dirname "$0")" && pwd)
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "postgresql server binaries not found" >&2; exit 2; }
dir=$(mktemp -d /tmp/verdict-forwarder.XXXXXX); port=$((20000 + RANDOM % 20000))
fwd=""
as() { runuser -u postgres -- "$@"; }
stop_forwarder() { if [ -n "$fwd" ]; then kill "$fwd" 2>/dev/null || true; wait "$fwd" 2>/dev/null || true; fwd=""; fi; }
cleanup() { stop_forwarder; as "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
cc -O2 -pthread -o "$dir/forwarder" "$here/forwarder.c"
mkdir -p "$dir/fwd" && chown -R postgres "$dir"
as "$bin/initdb" -D "$dir/data" >/dev/null 2>&1
as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses='' -c max_prepared_transactions=256 -c max_connections=200" start >/dev/null
psql() { as /usr/bin/psql -h "$dir" -p "$port" -v ON_ERROR_STOP=1 -qAt "$@"; }
for db in shard_a shard_b; do
  psql -d postgres -c "create database $db"
  psql -d $db -c "create table accounts(id int primary key, balance bigint not null); insert into accounts select g, 1000 from generate_series(1,10000) g;"
done
cat > "$dir/twopc.sql" <<'SQL'
\set a random(1,10000)
BEGIN;
UPDATE accounts SET balance = balance + 1 WHERE id = :a;
PREPARE TRANSACTION 'fwd:shard:client_id';
COMMIT PREPARED 'fwd:shard:client_id';
SQL
chmod 644 "$dir/twopc.sql"
bench() { as /usr/bin/pgbench -n -D shard="$1" -h "$2" -p "$port" -c "$clients" -j 2 -T "$secs" -f "$dir/twopc.sql" "$1" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
both() { bench shard_a "$1" > "$dir/a.tps" & bench shard_b "$1" > "$dir/b.tps"; wait; echo "$(cat "$dir/a.tps") $(cat "$dir/b.tps")"; }
ratio() { python3 -c "print(round(min($1, $2) / min($3, $4), 2))"; }
direct=$(both "$dir"); echo "direct:              $direct"
for mode in epoll threads; do
  # As root (so that it can be stopped), its socket open to pgbench running as postgres.
  (umask 000; exec "$dir/forwarder" "$mode" "$dir/fwd/.s.PGSQL.$port" "$dir/.s.PGSQL.$port") & fwd=$!
  sleep 0.5
  r=$(both "$dir/fwd"); echo "forwarder ($mode): $r ratio $(ratio $r $direct)"
  stop_forwarder
done
again=$(both "$dir"); echo "direct again:        $again ratio $(ratio $again $direct)"
