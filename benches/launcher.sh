#!/usr/bin/env bash
# `latch run` against a loopback platform, next to `tini -- true` (Debian's `tini`) and plain
# `cat`, measured in the same run with hyperfine (Debian's `hyperfine`).
# Usage: bash benches/launcher.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
latch=$PWD/target/release/latch
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$latch" serve --data-dir "$dir/data" --listen 127.0.0.1:0 --bootstrap-key-file "$dir/key" \
  > "$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$dir/serve.log" 2>/dev/null && break; sleep 0.1; done
export LATCH_URL="$(sed -n 's/^latch: note: listening on //p' "$dir/serve.log" | head -1)"
export LATCH_API_KEY="$(cat "$dir/key")"
# 20 team secrets, as a typical agent gets.
for i in $(seq 0 19); do
  head -c 24 /dev/urandom | base64 | "$latch" secret create --team "BENCH_SECRET_$i" --value-file - > /dev/null
done
# 200 MB of log-like text.
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
hyperfine -N --warmup 3 --runs 40 --export-markdown "${BENCH_MD_START:-/dev/null}" \
  -n 'tini -- true' 'tini -- true' \
  -n 'latch run --no-scrub -- true' "$latch run --no-scrub -- true" \
  -n 'latch run -- true' "$latch run -- true"
hyperfine --warmup 1 --runs 5 --export-markdown "${BENCH_MD_CAT:-/dev/null}" \
  -n 'cat F > /dev/null' "cat $dir/big > /dev/null" \
  -n 'cat F | cat > /dev/null' "cat $dir/big | cat > /dev/null" \
  -n 'latch run -- cat F > /dev/null' "$latch run -- cat $dir/big > /dev/null"
# The run records are there.
"$latch" runs list | head -3
