#!/bin/bash
# Stop the proxies started by start.sh (by their pid files, never by process
# name).  Idempotent.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
P="$RUNROOT/proxies"
for name in socks socks-auth http http-auth; do
    f="$P/$name.pid"
    [ -s "$f" ] || continue
    pid=$(head -n1 "$f" | tr -dc 0-9)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        log "$name (pid $pid) stopped"
    fi
    rm -f "$f"
done
