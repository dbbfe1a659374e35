#!/usr/bin/env bash
# fetch_vs_mpop.sh [RUNS] [DIR]: `pop3 fetch` against mpop, both fetching alice's mailbox
# (1000 messages of ~4 KB) from the private Dovecot over implicit TLS with SCRAM-SHA-256,
# leaving the mail on the server, into a fresh Maildir under DIR (default /work/pop3-bench,
# the same disk for both: see `df DIR`). Prints every wall time and the median of each.
#
# Needs the Dovecot peer (bash scripts/dovecot/start.sh; fill.sh 1000 4000 alice --reset)
# and a release build (cargo build --release -p pop3-cli). Installs mpop if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
DIR=${2:-/work/pop3-bench}
RUNROOT=${POP3_RUNROOT:-/tmp/pop3-run}
CA="$RUNROOT/dovecot/tls/cert.pem"
PORT=${POP3_DOVECOT_TLS_ADDR:-127.0.0.1:11995}
PORT=${PORT##*:}
POP3=target/release/pop3
command -v mpop >/dev/null 2>&1 || apt-get install -y mpop >/dev/null
[ -x "$POP3" ] || cargo build --release -p pop3-cli
mkdir -p "$DIR"
df -h "$DIR" | tail -1
W=$(mktemp -d "$DIR/run.XXXXXX")
trap 'rm -rf "$W"' EXIT
cat > "$W/mpoprc" <<RC
defaults
account alice
host localhost
port $PORT
tls on
tls_starttls off
tls_trust_file $CA
auth scram-sha-256
user alice
password secret-a
keep on
only_new on
pipelining auto
uidls_file $W/uidls
delivery maildir $W/mpop
RC
chmod 600 "$W/mpoprc"
export POP3_BENCH_PW=secret-a
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", e - s }'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
: > "$W/pop3.times"; : > "$W/mpop.times"
for i in $(seq "$RUNS"); do
    rm -rf "$W/mpop" "$W/uidls" "$W/pop3"; mkdir -p "$W/mpop"/{cur,new,tmp}; sync
    m=$(t mpop -C "$W/mpoprc" -q alice)
    [ "$(ls "$W/mpop/new" | wc -l)" = 1000 ] || { echo "mpop stored $(ls "$W/mpop/new" | wc -l)"; exit 1; }
    sync
    p=$(t "$POP3" --host localhost --port "$PORT" --ca-file "$CA" --user alice \
        --password-env POP3_BENCH_PW fetch -q --maildir "$W/pop3")
    [ "$(ls "$W/pop3/new" | wc -l)" = 1000 ] || { echo "pop3 stored $(ls "$W/pop3/new" | wc -l)"; exit 1; }
    echo "run $i: mpop ${m}s  pop3 ${p}s"
    echo "$m" >> "$W/mpop.times"; echo "$p" >> "$W/pop3.times"
done
echo "median of $RUNS: mpop $(median < "$W/mpop.times")s  pop3 $(median < "$W/pop3.times")s"
