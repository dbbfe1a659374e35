#!/usr/bin/env bash
# Smoke run of the end-to-end benchmark (bench/, the pop3-bench crate): proves that the
# benchmark still builds and works, not how fast anything is. Builds pop3-bench and the pop3
# binary in release mode, then runs our clients (blocking, async, `pop3 fetch`) and the raw
# lower bound once each on three tiny workloads against the in-memory server: 200 x 4 KiB,
# 4 x 1 MiB, and 50 x 4 KiB with a 2 ms delay per reply. Fails if any client cannot run or
# any run does not receive the whole mailbox (checked against the server's byte count).
# The run itself takes a few seconds; the full benchmark is documented in BENCHMARKS.md.
#
#   bash .ci/bench-smoke.sh        (from anywhere; called by .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
cargo build --release -p pop3-bench -p pop3-cli
built=$SECONDS

target_dir=${CARGO_TARGET_DIR:-target}
out=$(mktemp -d "${TMPDIR:-/tmp}/pop3-bench-smoke.XXXXXX")
trap 'rm -rf "$out"' EXIT

timeout 120 "$target_dir/release/pop3-bench" run \
    --workloads 200:4K,4:1M,50:4K:2 \
    --clients raw,floor,blocking,async,fetch \
    --reps 1 --timeout 30 --require-all \
    --pop3 "$target_dir/release/pop3" \
    --out "$out"

for f in results.json results.md chart.svg; do
    [ -s "$out/$f" ] || { echo "bench smoke: $f was not written" >&2; exit 1; }
done
echo "bench smoke: passed (build $((built - start)) s, run $((SECONDS - built)) s)"
