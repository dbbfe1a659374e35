#!/usr/bin/env bash
# Long fuzz runs: every target (or those in $TARGETS), one after the other, one process each,
# nice'd, for $FUZZ_SECONDS each (default 1800), on a copy of the committed corpus that grows in
# $FUZZ_LOGS/corpus/<target>. Writes $FUZZ_LOGS/<target>.log and a line per target to
# $FUZZ_LOGS/summary.tsv (execs, execs/s, corpus files and bytes, result), then a minimized
# corpus to $FUZZ_LOGS/cmin/<target> (cargo fuzz cmin) ready to be copied into fuzz/corpus.
#
#   nohup fuzz/long-run.sh > /work/fuzz-logs/run.out 2>&1 &
set -u
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-1800}"
logs="${FUZZ_LOGS:-/work/fuzz-logs}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
mkdir -p "$logs/corpus" "$logs/cmin"
summary="$logs/summary.tsv"
[ -f "$summary" ] || printf 'target\tstarted\tseconds\texecs\texecs_per_s\tcorpus_files\tcorpus_bytes\tpeak_rss_mb\tresult\n' >"$summary"

nice -n 10 cargo fuzz build -s "$sanitizer" || exit 1
for target in ${TARGETS:-$(cargo fuzz list)}; do
    corpus="$logs/corpus/$target"
    mkdir -p "$corpus"
    cp -n "corpus/$target/"* "$corpus/" 2>/dev/null
    log="$logs/$target.log"
    started=$(date -u +%FT%TZ)
    t0=$(date +%s)
    nice -n 10 cargo fuzz run -s "$sanitizer" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
        -dict=dict/pop3.dict -print_final_stats=1 -artifact_prefix="$logs/artifacts-$target-" >"$log" 2>&1
    rc=$?
    elapsed=$(( $(date +%s) - t0 ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(du -sb "$corpus" | cut -f1)
    if [ "$rc" -eq 0 ]; then result=clean; else result="FINDING (rc $rc, see $log and $logs/artifacts-$target-*)"; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$started" "$elapsed" "${execs:-?}" "${speed:-?}" \
        "$files" "$bytes" "${rss:-?}" "$result" >>"$summary"
    rm -rf "$logs/cmin/$target"
    mkdir -p "$logs/cmin/$target"
    nice -n 10 cargo fuzz cmin -s "$sanitizer" "$target" "$corpus" >"$logs/cmin-$target.log" 2>&1 || true
    cp "$corpus/"* "$logs/cmin/$target/" 2>/dev/null
done
# The README table rows, ready to paste.
awk -F'\t' 'NR > 1 { printf "| `%s` | %s | %s | %s | %s | %s |\n", $1, $5, $4, $6, $7, ($9 == "clean" ? "none in " int($3 / 60) " min" : $9) }' \
    "$summary" >"$logs/table.md"
echo "done: $summary, $logs/table.md"
