#!/usr/bin/env bash
# Fuzz smoke: builds every cargo-fuzz target of fuzz/ and runs each one briefly, starting from
# the committed corpus plus the target's `regressions/<target>-*` inputs (copied, so the run
# does not add to them; libFuzzer runs every corpus input before it mutates, so a regression
# that crashes again fails the run). Fails on any crash, oracle failure, timeout or
# out-of-memory.
#
#   FUZZ_SECONDS       seconds per target (default 60)
#   FUZZ_SANITIZER     address (default) or none
#
# Runs on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the -Z flags it needs.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

cd fuzz
start=$(date +%s)
cargo fuzz build -s "$sanitizer"
echo "fuzz-smoke: built in $(( $(date +%s) - start )) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target"
    if [ -d "corpus/$target" ]; then
        cp -r "corpus/$target/." "$work/$target/"
    fi
    for regression in regressions/"$target"-*; do
        [ -f "$regression" ] && cp "$regression" "$work/$target/"
    done
    log="$work/$target.log"
    if cargo fuzz run -s "$sanitizer" "$target" "$work/$target" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -dict=dict/pop3.dict -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        echo "fuzz-smoke: $target ok: ${runs:-?} runs, ${speed:-?} execs/s, corpus $(ls "$work/$target" | wc -l) files"
        passed=$((passed + 1))
    else
        echo "fuzz-smoke: $target FAILED:"
        grep -m1 -A3 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" || true
        echo "fuzz-smoke: the end of its log:"
        tail -n 40 "$log"
        echo "fuzz-smoke: the crashing input is under fuzz/artifacts/$target/;"
        echo "            reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run $target fuzz/artifacts/$target/<file>"
        failed=$((failed + 1))
    fi
done
echo "fuzz-smoke: total $(( $(date +%s) - start )) s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
