#!/usr/bin/env bash
# Runs the launcher tests many times in a row while CPU hogs keep every core busy, to show that
# they are deterministic (issue 24). By default the tests also start with SIGHUP, SIGINT and
# SIGQUIT ignored, as under `nohup` or as a background job of a non-interactive shell: the
# condition that made `each_forwarded_signal_reaches_a_trapping_child` fail in CI.
#
# Usage: bash tests/stress-launcher.sh [RUNS] [FILTER]
#   RUNS    how many times (default 50)
#   FILTER  which tests (default `launcher::`, every launcher test)
# Environment: STRESS_HOGS (default: one per core), STRESS_PLAIN=1 (inherit the caller's signal
# dispositions instead of ignoring the three).
# Prints one line per run and a summary; exits 1 if any run failed, keeping the failed runs' logs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-50}
filter=${2:-launcher::}
hogs=${STRESS_HOGS:-$(nproc)}

# Build once; the runs then use the same test binary.
bin=$(cargo test --locked --test latch --no-run 2>&1 |
  sed -n 's/^ *Executable tests\/latch\/main.rs (\(.*\))$/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "stress: cannot find the test binary" >&2; exit 1; }

logs=$(mktemp -d /tmp/latch-stress.XXXXXX)
pids=()
stop_hogs() {
  # By PID, one at a time: never a process group.
  for pid in "${pids[@]}"; do kill -s TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_hogs EXIT
for _ in $(seq 1 "$hogs"); do
  yes > /dev/null &
  pids+=($!)
done

# The test binary starts with the three signals ignored (unless STRESS_PLAIN=1); ignored
# dispositions are inherited by everything it starts. The script itself still stops on Ctrl-C.
tests() {
  if [ "${STRESS_PLAIN:-0}" != 1 ]; then trap '' HUP INT QUIT; fi
  exec "$@"
}
echo "stress: $runs runs of '$filter' with $hogs CPU hogs; the tests' ignored signals (SigIgn):" \
  "$(tests grep SigIgn /proc/self/status | cut -f2)"

failed=0
start=$(date +%s)
for i in $(seq 1 "$runs"); do
  t0=$(date +%s)
  if (tests "$bin" --quiet "$filter") > "$logs/run-$i.log" 2>&1; then
    echo "run $i: ok ($(( $(date +%s) - t0 )) s)"
    rm -f "$logs/run-$i.log"
  else
    failed=$((failed + 1))
    echo "run $i: FAILED ($(( $(date +%s) - t0 )) s), log: $logs/run-$i.log"
    grep -E '^test .* FAILED|panicked' "$logs/run-$i.log" | head -n 5 || true
  fi
done
echo "stress: $failed of $runs runs failed, $(( $(date +%s) - start )) s in all"
[ "$failed" -eq 0 ] && rm -rf "$logs"
[ "$failed" -eq 0 ]
