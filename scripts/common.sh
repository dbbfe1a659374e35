# Shared helpers for the project's test-peer scripts.  Source it, don't run it.
#
#   SCRIPTS_DIR  this directory (scripts/)
#   RUNROOT      where all runtime state goes: $POP3_RUNROOT, default /tmp/pop3-run
#
# Test accounts (created as system users without a login shell, because
# Dovecot's userdb needs a uid/gid to run the mail process as):
#   alice / secret-a
#   bob   / secret-b
#   carol / secret-c   (the interop suite's destructive tests refill it)

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNROOT="${POP3_RUNROOT:-/tmp/pop3-run}"
PY="$(command -v python3 || echo /usr/bin/python3)"
TEST_USERS="alice bob carol"

declare -A TEST_PASS=([alice]=secret-a [bob]=secret-b [carol]=secret-c)

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# apt_ensure PKG... : install only what is missing, and never start or enable
# the packages' system services.
apt_ensure() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    # A policy-rc.d that exits 101 forbids maintainer scripts to start
    # daemons (invoke-rc.d honours it); add one only if the machine has none.
    local added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        added_policy=1
    fi
    # Fresh machines often have empty package lists.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' 2>/dev/null | head -n1)" ]; then
        apt-get update -q >&2 || true
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2 \
        || { apt-get update -q >&2 \
             && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2; } \
        || rc=1
    [ $added_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || die "apt-get install ${missing[*]} failed"
    return 0
}

# disable_service NAME : the package's system service must not start at boot
# (maintainer scripts enable it even when policy-rc.d forbids starting it).
# Works with or without a running systemd; idempotent.
disable_service() {
    local name=$1
    if command -v systemctl >/dev/null 2>&1 && [ -e "/lib/systemd/system/$name.service" ]; then
        if [ -n "$(find /etc/systemd/system -name "$name.service" -o -name "$name.socket" 2>/dev/null | head -n1)" ]; then
            systemctl disable "$name.service" >/dev/null 2>&1 || true
            if [ -d /run/systemd/system ]; then systemctl stop "$name.service" >/dev/null 2>&1 || true; fi
        fi
    fi
    if [ -e "/etc/init.d/$name" ] && command -v update-rc.d >/dev/null 2>&1 &&
       [ -n "$(find /etc/rc[2-5].d -name "S*$name" 2>/dev/null | head -n1)" ]; then
        update-rc.d "$name" disable >/dev/null 2>&1 || true
    fi
}

# Create the system test users (idempotent).  Home: $RUNROOT/home/USER.
ensure_users() {
    local u h
    for u in $TEST_USERS; do
        if ! id "$u" >/dev/null 2>&1; then
            useradd --system --no-create-home --home-dir "$RUNROOT/home/$u" \
                    --shell /usr/sbin/nologin "$u" || die "useradd $u"
        fi
        h=$(getent passwd "$u" | cut -d: -f6)
        [ "$h" = "$RUNROOT/home/$u" ] || usermod -d "$RUNROOT/home/$u" "$u"
        mkdir -p "$RUNROOT/home/$u"
        chown "$u:" "$RUNROOT/home/$u"
        chmod 700 "$RUNROOT/home/$u"
    done
}

# ensure_cert DIR : self-signed certificate DIR/cert.pem + DIR/key.pem,
# CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (kept if already valid).
ensure_cert() {
    local dir=$1
    mkdir -p "$dir"
    if [ ! -s "$dir/cert.pem" ] || [ ! -s "$dir/key.pem" ] ||
       ! openssl x509 -in "$dir/cert.pem" -noout -checkend 86400 >/dev/null 2>&1 ||
       ! openssl x509 -in "$dir/cert.pem" -noout -ext subjectAltName 2>/dev/null | grep -q 'IP Address:127.0.0.1' ||
       ! openssl x509 -in "$dir/cert.pem" -noout -ext basicConstraints 2>/dev/null | grep -q 'CA:FALSE'; then
        # CA:FALSE matters: webpki (rustls) rejects a CA certificate used as
        # the server's end-entity certificate, and OpenSSL's default is CA:TRUE.
        openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
            -keyout "$dir/key.pem" -out "$dir/cert.pem" \
            -subj "/CN=localhost" \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -addext "basicConstraints=critical,CA:FALSE" \
            -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
            -addext "extendedKeyUsage=serverAuth" 2>/dev/null || die "openssl req failed"
        chmod 644 "$dir/cert.pem"
        chmod 600 "$dir/key.pem"
    fi
}

# wait_port HOST PORT [SECONDS] : until a TCP connect succeeds.
wait_port() {
    local host=$1 port=$2 t=${3:-10} i=0
    while [ $i -lt $((t * 10)) ]; do
        if "$PY" - "$host" "$port" <<'EOF' 2>/dev/null
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
EOF
        then return 0; fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
