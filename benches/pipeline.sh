#!/usr/bin/env bash
# `latch scrub` as a pipeline stage against plain `cat` over the same 200 MB file, measured in
# the same run with hyperfine (Debian package `hyperfine`). Usage: bash benches/pipeline.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# 20 secrets in the environment, log-like text with one planted secret every ~8 KiB.
python3 - "$dir/big" "$dir/env" <<'PY'
import random, sys, base64
random.seed(7)
alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
secrets = ["".join(random.choice(alnum) for _ in range(32)) for _ in range(20)]
words = ["INFO", "request", "GET", "/api/v1/items", "200", "took", "12ms", "user=42", "the",
         "agent", "tool_call", '{"path":"src/main.rs"}', "WARN", "retrying", "connection",
         "2026-11-22T16:00:00Z", "ok", "done", "compiling", "serde"]
with open(sys.argv[1], "w") as f:
    size, next_plant = 0, 8192
    lines = []
    while size < 200 * 1000 * 1000:
        line = " ".join(random.choice(words) for _ in range(12))
        if size > next_plant:
            s = random.choice(secrets)
            line += " " + (s if random.random() < 0.5 else base64.b64encode(s.encode()).decode())
            next_plant += 8192
        lines.append(line + "\n")
        size += len(line) + 1
        if len(lines) > 10000:
            f.write("".join(lines)); lines = []
    f.write("".join(lines))
with open(sys.argv[2], "w") as f:
    for i, s in enumerate(secrets):
        f.write(f"export BENCH_SECRET_{i}={s}\n")
PY
# shellcheck disable=SC1091
. "$dir/env"
flags=$(for i in $(seq 0 19); do printf -- '--secret-env BENCH_SECRET_%d ' "$i"; done)
ls -l "$dir/big"
# Baselines: `cat F > /dev/null` lets GNU cat hand the copy to the kernel, so the fair one is a
# second pipeline stage doing what latch scrub does: read a pipe, write a pipe.
hyperfine --warmup 1 --runs 5 --export-markdown "${BENCH_MD:-/dev/null}" \
  -n 'cat F > /dev/null' "cat $dir/big > /dev/null" \
  -n 'cat F | cat > /dev/null' "cat $dir/big | cat > /dev/null" \
  -n 'cat F | latch scrub (20 secrets) > /dev/null' "cat $dir/big | target/release/latch scrub $flags > /dev/null" \
  -n 'latch scrub (20 secrets) < F > /dev/null' "target/release/latch scrub $flags < $dir/big > /dev/null"
# The masked output holds no secret.
target/release/latch scrub $flags < "$dir/big" > "$dir/out"
for i in $(seq 0 19); do
  v="BENCH_SECRET_$i"
  if grep -qF "${!v}" "$dir/out"; then echo "secret $i survived" >&2; exit 1; fi
done
echo "masked regions: $(grep -o '\[MASKED:' "$dir/out" | wc -l)"
