#!/usr/bin/env bash
# The resolve benchmark on PostgreSQL: starts a throwaway cluster on loopback (Debian's
# `postgresql` package, default settings, fsync on), creates an empty database, runs
# `cargo bench --bench resolve` against it, removes the cluster, and checks the targets of
# BENCHMARKS.md ("On PostgreSQL") on this run's figures: >= 2,000 runs/s with p99 <= 20 ms at
# 64 clients and 100 secrets. Run as root.
# Usage: bash benches/resolve-postgres.sh   (CLIENTS, ROUNDS and SECONDS pass through)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pgdata=$(mktemp -d /tmp/latch-bench-pg.XXXXXX)
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chown postgres "$pgdata"
stop_pg() {
  su postgres -c "$pgbin/pg_ctl -D $pgdata -m fast stop" >/dev/null 2>&1 || true
  rm -rf "$pgdata"
}
trap stop_pg EXIT
su postgres -c "$pgbin/initdb -D $pgdata -A trust -U latch" >/dev/null
su postgres -c "$pgbin/pg_ctl -D $pgdata -w -l $pgdata/log \
  -o '-k $pgdata -p $pgport -c listen_addresses=127.0.0.1' start" >/dev/null
su postgres -c "$pgbin/psql -h 127.0.0.1 -p $pgport -U latch -d postgres -qc 'CREATE DATABASE bench'"
"$pgbin/postgres" --version
out=$(mktemp)
trap 'stop_pg; rm -f "$out"' EXIT
LATCH_BENCH_DATABASE_URL="postgres://latch@127.0.0.1:$pgport/bench" cargo bench --bench resolve \
  | tee "$out"
# "POST /v1/runs   2345 req/s   p50 ... ms   p99 12.34 ms ..."
awk '/^POST \/v1\/runs/ {
  rate = $3; for (i = 1; i <= NF; i++) if ($i == "p99") p99 = $(i + 1)
  printf "\ntargets (this run):\n"
  printf "  runs/s  %8.0f  (target >= 2000)   %s\n", rate, (rate >= 2000 ? "met" : "NOT MET")
  printf "  p99     %8.2f ms (target <= 20 ms) %s\n", p99, (p99 <= 20 ? "met" : "NOT MET")
}' "$out"
