#!/bin/bash
# fill.sh N SIZE USER [--reset] [extra genmail.py args]
#
# Append N synthetic messages of about SIZE bytes (scripts/genmail.py) to
# USER's Maildir on the private Dovecot ($RUNROOT/dovecot/mail/USER/Maildir).
# --reset empties the mailbox, including Dovecot's index and uidlist, first.
# Files use LF line ends; Dovecot sends CRLF.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
[ $# -ge 3 ] || die "usage: fill.sh N SIZE USER [--reset] [genmail args]"
N=$1 SIZE=$2 U=$3
shift 3
RESET=0
if [ "${1:-}" = --reset ]; then RESET=1; shift; fi
id "$U" >/dev/null 2>&1 || die "no such user $U (run start.sh first)"
H="$RUNROOT/dovecot/mail/$U"
M="$H/Maildir"
if [ $RESET = 1 ]; then
    rm -rf "$M"
    rm -rf "$H"/dovecot* 2>/dev/null || true
fi
mkdir -p "$M"/{cur,new,tmp}
"$PY" "$SCRIPTS_DIR/genmail.py" "$N" "$SIZE" "$M" "$@"
chown -R "$U:" "$H"
