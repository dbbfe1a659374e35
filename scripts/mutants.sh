#!/usr/bin/env bash
# Mutation testing of pop3-proto with cargo-mutants: how many of the mutants cargo-mutants
# makes in the core's key files are caught ("killed") by pop3-proto's own tests.
#
#   bash scripts/mutants.sh                       every file below, one job
#   MUTANTS_FILES="pop3-proto/src/body.rs" bash scripts/mutants.sh
#   MUTANTS_SHARD=0/4 bash scripts/mutants.sh     one quarter (run 0/4 .. 3/4 anywhere)
#   bash scripts/mutants.sh --list                what would be tried, without building
#
# Each mutant is a rebuild of pop3-proto and its test binaries plus a test run: about a minute
# on a 2-core machine, so the five files (about 620 mutants) take hours; shard them.
#
# Environment: MUTANTS_FILES (space-separated), MUTANTS_SHARD (k/n), MUTANTS_JOBS (default 1:
# each job is a full build), MUTANTS_TIMEOUT (seconds per test run, default 300),
# MUTANTS_OUT (default target/mutants). The summary is in $MUTANTS_OUT/mutants.out/outcomes.json;
# caught.txt, missed.txt, timeout.txt and unviable.txt list each mutant.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants

files=${MUTANTS_FILES:-"pop3-proto/src/body.rs pop3-proto/src/response.rs pop3-proto/src/capa.rs pop3-proto/src/command.rs pop3-proto/src/client/mod.rs pop3-proto/src/client/send.rs pop3-proto/src/client/receive.rs"}
args=(--package pop3-proto --jobs "${MUTANTS_JOBS:-1}" --timeout "${MUTANTS_TIMEOUT:-300}"
      --output "${MUTANTS_OUT:-target/mutants}")
for f in $files; do
    args+=(--file "$f")
done
if [ -n "${MUTANTS_SHARD:-}" ]; then
    args+=(--shard "$MUTANTS_SHARD")
fi
# Unit and integration tests (doctests are examples, slow to build, and test little that the
# others do not); no debug info, to cut link time per mutant.
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0
cargo mutants "${args[@]}" "$@" -- --lib --tests || status=$?
out="${MUTANTS_OUT:-target/mutants}/mutants.out"
for f in caught missed timeout unviable; do
    printf '%s: %s\n' "$f" "$( [ -f "$out/$f.txt" ] && wc -l < "$out/$f.txt" || echo 0)"
done
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts: a report, not a failure here.
case "${status:-0}" in 0|2|3) exit 0 ;; *) exit "$status" ;; esac
