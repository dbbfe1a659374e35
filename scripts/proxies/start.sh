#!/bin/bash
# Start the real proxies the network-path tests go through, on loopback, as
# root, leaving no system service enabled.  Idempotent: an instance already
# running (by its pid file) is left alone.
#
#   127.0.0.1:11080  dante (danted)  SOCKS5, no authentication
#   127.0.0.1:11081  dante (danted)  SOCKS5, username/password (RFC 1929)
#   127.0.0.1:18080  tinyproxy       HTTP CONNECT, no authentication
#   127.0.0.1:18081  tinyproxy       HTTP CONNECT, basic authentication
#
# Credentials: pop3proxy / proxy-secret.  Dante's username method checks
# system accounts (getpwnam + the shadow password), so this creates the
# system user pop3proxy (no home, no shell) with that password.  Both
# proxies only allow CONNECT to 127.0.0.1 (the private Dovecot's ports).
#
# Runtime state lives in $RUNROOT/proxies (configs, pid files, logs).  The
# tests read the addresses from POP3_SOCKS_ADDR, POP3_SOCKS_AUTH_ADDR,
# POP3_HTTP_PROXY_ADDR and POP3_HTTP_PROXY_AUTH_ADDR (see .ci/run).
set -euo pipefail
. "$(dirname "$0")/../common.sh"
need_root

apt_ensure dante-server tinyproxy
disable_service danted
disable_service tinyproxy
command -v danted >/dev/null 2>&1 || die "danted not found after install"
command -v tinyproxy >/dev/null 2>&1 || die "tinyproxy not found after install"

P="$RUNROOT/proxies"
PROXY_USER=pop3proxy
PROXY_PASS=proxy-secret
mkdir -p "$P"
# tinyproxy drops to nobody before it writes its pid and log files
chmod 755 "$RUNROOT"
chmod 777 "$P"

if ! id "$PROXY_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$PROXY_USER" || die "useradd $PROXY_USER"
fi
echo "$PROXY_USER:$PROXY_PASS" | chpasswd || die "chpasswd $PROXY_USER"

running() { [ -s "$1" ] && kill -0 "$(head -n1 "$1" | tr -dc 0-9)" 2>/dev/null; }

# start_dante NAME PORT METHOD
start_dante() {
    local name=$1 port=$2 method=$3 conf="$P/$1.conf" pid="$P/$1.pid"
    if running "$pid"; then
        log "$name already running (pid $(cat "$pid")) on 127.0.0.1:$port"
        return 0
    fi
    cat > "$conf" <<CONF
logoutput: $P/$name.log
debug: 0
internal: 127.0.0.1 port = $port
external: 127.0.0.1
clientmethod: none
socksmethod: $method
user.privileged: root
user.unprivileged: nobody
client pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error
}
socks pass {
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    log: error connect
}
socks block {
    from: 0.0.0.0/0 to: 0.0.0.0/0
    log: connect error
}
CONF
    # -D: detach; -N 1: one process (the tests are few); -p: our pid file.
    danted -D -N 1 -f "$conf" -p "$pid" || die "danted $name failed to start (see $P/$name.log)"
    wait_port 127.0.0.1 "$port" 10 || die "danted $name not listening on $port (see $P/$name.log)"
    log "$name (SOCKS5, $method) on 127.0.0.1:$port"
}

# start_tinyproxy NAME PORT [BASICAUTH-LINE]
start_tinyproxy() {
    local name=$1 port=$2 auth=${3:-} conf="$P/$1.conf" pid="$P/$1.pid"
    if running "$pid"; then
        log "$name already running (pid $(cat "$pid")) on 127.0.0.1:$port"
        return 0
    fi
    cat > "$conf" <<CONF
User nobody
Group nogroup
Port $port
Listen 127.0.0.1
Timeout 60
MaxClients 20
PidFile "$pid"
LogFile "$P/$name.log"
LogLevel Connect
Allow 127.0.0.1
ConnectPort 11110
ConnectPort 11995
$auth
CONF
    rm -f "$pid"
    tinyproxy -c "$conf" || die "tinyproxy $name failed to start (see $P/$name.log)"
    wait_port 127.0.0.1 "$port" 10 || die "tinyproxy $name not listening on $port (see $P/$name.log)"
    log "$name (HTTP CONNECT${auth:+, basic auth}) on 127.0.0.1:$port"
}

start_dante socks 11080 none
start_dante socks-auth 11081 username
start_tinyproxy http 18080
start_tinyproxy http-auth 18081 "BasicAuth $PROXY_USER $PROXY_PASS"
