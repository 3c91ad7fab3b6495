#!/usr/bin/env bash
# `latch run` against a loopback platform, next to `tini` (Debian's `tini`), `cat | cat` and
# `script` (util-linux), measured in the same run with hyperfine (Debian's `hyperfine`), and the
# targets of BENCHMARKS.md ("Launcher") checked on the figures of this run:
#   latch run --no-scrub -- true   <= tini -- true + 3 ms
#   latch run -- true              <= tini -- true + 5 ms   (20 team secrets)
#   latch --version                <= tini --version + 1 ms
#   latch run --pty -- cat F       <= 1.5 x script -qc 'cat F'   (100 MB through a pty)
# Usage: bash benches/launcher.sh [RUNS]      (RUNS of each short command, default 60)
# Set LATCH_BIN to measure another build of latch against the same platform.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-60}
for tool in hyperfine tini script python3; do
  command -v "$tool" >/dev/null || { echo "launcher.sh: $tool is not installed" >&2; exit 1; }
done
cargo build --release --quiet
latch=${LATCH_BIN:-$PWD/target/release/latch}
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$PWD/target/release/latch" serve --data-dir "$dir/data" --listen 127.0.0.1:0 \
  --bootstrap-key-file "$dir/key" > "$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$dir/serve.log" 2>/dev/null && break; sleep 0.1; done
LATCH_URL="$(sed -n 's/^latch: note: listening on //p' "$dir/serve.log" | head -1)"
LATCH_API_KEY="$(cat "$dir/key")"
export LATCH_URL LATCH_API_KEY
# 20 team secrets, as a typical agent gets.
for i in $(seq 0 19); do
  head -c 24 /dev/urandom | base64 | "$latch" secret create --team "BENCH_SECRET_$i" --trim \
    --value-file - > /dev/null
done
# Text files: 200 MB of log-like lines (pipes) and the first 100 MB of it (pty).
python3 - "$dir/big" <<'PY'
import random, sys
random.seed(7)
words = ["INFO", "request", "GET", "/api/v1/items", "200", "took", "12ms", "user=42", "agent",
         "tool_call", '{"path":"src/main.rs"}', "WARN", "retrying", "ok", "done", "serde"]
with open(sys.argv[1], "w") as f:
    size, lines = 0, []
    while size < 200 * 1000 * 1000:
        line = " ".join(random.choice(words) for _ in range(12)) + "\n"
        lines.append(line); size += len(line)
        if len(lines) > 10000: f.write("".join(lines)); lines = []
    f.write("".join(lines))
PY
head -c 100000000 "$dir/big" > "$dir/pty100"

json="$dir/short.json"
hyperfine -N --warmup 5 --runs "$runs" --export-json "$json" \
  --export-markdown "${BENCH_MD_START:-/dev/null}" \
  -n 'tini -- true' 'tini -- true' \
  -n 'latch run --no-scrub -- true' "$latch run --no-scrub -- true" \
  -n 'latch run -- true' "$latch run -- true" \
  -n 'tini --version' 'tini --version' \
  -n 'latch --version' "$latch --version"
hyperfine --warmup 1 --runs 5 --export-json "$dir/pipe.json" \
  --export-markdown "${BENCH_MD_CAT:-/dev/null}" \
  -n 'cat F | cat > /dev/null' "cat $dir/big | cat > /dev/null" \
  -n 'latch run -- cat F > /dev/null' "$latch run -- cat $dir/big > /dev/null"
hyperfine --warmup 1 --runs 5 --export-json "$dir/pty.json" \
  --export-markdown "${BENCH_MD_PTY:-/dev/null}" \
  -n "script -qc 'cat F' > /dev/null" "script -qec 'cat $dir/pty100' /dev/null > /dev/null" \
  -n 'latch run --pty -- cat F > /dev/null' "$latch run --pty -- cat $dir/pty100 > /dev/null"

python3 - "$json" "$dir/pipe.json" "$dir/pty.json" <<'PY'
import json, sys
means = {}
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        means[r["command"]] = r["mean"] * 1000
def line(what, value, limit, unit):
    verdict = "met" if value <= limit else "NOT MET"
    print(f"  {what:<46} {value:8.2f} {unit}  (target <= {limit:.2f} {unit})  {verdict}")
print("\ntargets (this run):")
line("latch run --no-scrub -- true - tini -- true", means["latch run --no-scrub -- true"] - means["tini -- true"], 3.0, "ms")
line("latch run -- true - tini -- true", means["latch run -- true"] - means["tini -- true"], 5.0, "ms")
line("latch --version - tini --version", means["latch --version"] - means["tini --version"], 1.0, "ms")
pty = means["latch run --pty -- cat F > /dev/null"] / means["script -qc 'cat F' > /dev/null"]
line("pty: latch run --pty -- cat F / script -qc", pty, 1.5, "x ")
pipe = means["latch run -- cat F > /dev/null"] / means["cat F | cat > /dev/null"]
line("pipes: latch run -- cat F / cat F | cat", pipe, 2.0, "x ")
PY
# The run records are there.
"$latch" runs list | head -3
