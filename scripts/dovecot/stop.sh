#!/bin/bash
# Stop the private Dovecot started by start.sh (by its master pid file, never
# by process name).  Idempotent.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
D="$RUNROOT/dovecot"
if [ ! -s "$D/run/master.pid" ]; then
    log "not running"
    exit 0
fi
pid=$(head -n1 "$D/run/master.pid" | tr -dc 0-9)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # 'dovecot stop' sends SIGTERM to the master, which stops its children
    dovecot -c "$D/dovecot.conf" stop 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "master $pid still alive, SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    log "dovecot (master $pid) stopped"
else
    log "stale pid file"
fi
rm -f "$D/run/master.pid"
