#!/usr/bin/env bash
# The resolve benchmark on PostgreSQL: starts a throwaway cluster on loopback (Debian's
# `postgresql` package, default settings, fsync on), creates an empty database, runs
# `cargo bench --bench resolve` against it, and removes the cluster. Run as root.
# Usage: bash benches/resolve-postgres.sh   (CLIENTS and SECONDS pass through)
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
LATCH_BENCH_DATABASE_URL="postgres://latch@127.0.0.1:$pgport/bench" cargo bench --bench resolve
