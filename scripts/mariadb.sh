#!/usr/bin/env bash
# Private MariaDB server for the test suite.
#
#   scripts/mariadb.sh start    install MariaDB if needed, start (or reuse) the
#                               private server, print its URL on the last line
#   scripts/mariadb.sh stop     shut the private server down (no-op if stopped)
#   scripts/mariadb.sh status   exit 0 if the private server is up, 1 otherwise
#   scripts/mariadb.sh url      print the URL of the running server
#
# The server is completely separate from any system MariaDB/MySQL: it reads no
# option files (--no-defaults), keeps all of its state under
# <repo>/target/mariadb/ (or $KV_MARIADB_DIR: the fault tests run servers of their own
# that way) and listens on 127.0.0.1:${KV_TEST_MYSQL_PORT:-33061} only (never 3306).
# `cargo clean` wipes it; the next `start` re-creates it.
#
# Credentials are a local test fixture, not a secret:
#   user kv / password kv-test-password, ALL PRIVILEGES ON *.* (every test
#   creates and drops its own database named kv_test_<random>), plus a
#   database `kv` for manual use. MariaDB's root user has no password and is
#   reachable only from this machine (socket or 127.0.0.1).
#
# Progress messages go to stderr; stdout carries only the URL, so
# `url=$(scripts/mariadb.sh start)` works.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
BASE_DIR="${KV_MARIADB_DIR:-$REPO_ROOT/target/mariadb}"
DATA_DIR="$BASE_DIR/data"
TMP_DIR="$BASE_DIR/tmp"
PID_FILE="$BASE_DIR/mariadbd.pid"
LOG_FILE="$BASE_DIR/mariadbd.log"
LOCK_FILE="$BASE_DIR/.lock"
INIT_MARKER="$BASE_DIR/.initialised"
PORT="${KV_TEST_MYSQL_PORT:-33061}"

KV_USER="kv"
KV_PASSWORD="kv-test-password"
KV_DATABASE="kv"

# Unix socket paths are limited to ~107 bytes; fall back to /tmp (keyed by the
# checkout path, so two checkouts never share a socket) when the repo is deep.
SOCKET="$BASE_DIR/mariadbd.sock"
if ((${#SOCKET} > 100)); then
    SOCKET="/tmp/kv-mariadb-$(printf '%s' "$BASE_DIR" | cksum | cut -d' ' -f1).sock"
fi

# Debian keeps mariadbd in /usr/sbin, which is not on a normal user's PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf 'mariadb.sh: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    echo "usage: $0 {start|stop|status|url}" >&2
    exit 2
}

# First command of the list that exists (newer mariadb-* names first).
find_cmd() {
    local c
    for c in "$@"; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

server_url() { echo "mysql://$KV_USER:$KV_PASSWORD@127.0.0.1:$1/$KV_DATABASE"; }

ensure_installed() {
    if ! find_cmd mariadbd mysqld >/dev/null; then
        log "MariaDB is not installed"
        apt_install mariadb-server mariadb-client
    fi

    MARIADBD="$(find_cmd mariadbd mysqld)" || die "mariadbd not found after installation"
    INSTALL_DB="$(find_cmd mariadb-install-db mysql_install_db)" || die "mariadb-install-db not found"
    ADMIN="$(find_cmd mariadb-admin mysqladmin)" || die "mariadb-admin not found"
    CLIENT="$(find_cmd mariadb mysql)" || die "mariadb (client) not found"
    if ! "$MARIADBD" --version 2>/dev/null | grep -qi mariadb; then
        die "$MARIADBD is not MariaDB ($("$MARIADBD" --version 2>&1 | head -n1)); this script needs MariaDB"
    fi
}

# Client/admin tools only need to be found, never installed, for stop/status.
find_tools() {
    ADMIN="$(find_cmd mariadb-admin mysqladmin)" || ADMIN=""
    CLIENT="$(find_cmd mariadb mysql)" || CLIENT=""
}

# All connections as MariaDB root go through the private socket.
admin() { "$ADMIN" --no-defaults --socket="$SOCKET" --user=root --connect-timeout=2 "$@"; }
sql() { "$CLIENT" --no-defaults --socket="$SOCKET" --user=root --batch --skip-column-names "$@"; }

# PID of the server of this datadir if its process is alive, else fails.
running_pid() {
    [[ -s "$PID_FILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [[ -n "$pid" ]] || return 1
    alive "$pid" || return 1
    # Guard against a recycled PID that now belongs to something else.
    if [[ -r "/proc/$pid/comm" ]]; then
        grep -Eq '^(mariadbd|mysqld)' "/proc/$pid/comm" || return 1
    fi
    echo "$pid"
}

answering() { [[ -n "${ADMIN:-}" ]] && admin ping >/dev/null 2>&1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

initialise_datadir() {
    [[ -f "$INIT_MARKER" && -d "$DATA_DIR/mysql" ]] && return 0
    log "initialising data directory $DATA_DIR"
    rm -rf "$DATA_DIR" "$INIT_MARKER"
    mkdir -p "$DATA_DIR"
    if ! "$INSTALL_DB" --no-defaults \
        --auth-root-authentication-method=normal \
        --datadir="$DATA_DIR" \
        --user="$(whoami)" \
        --skip-test-db \
        >"$BASE_DIR/install-db.log" 2>&1; then
        tail -n 40 "$BASE_DIR/install-db.log" >&2 || true
        die "mariadb-install-db failed (full log: $BASE_DIR/install-db.log)"
    fi
    touch "$INIT_MARKER"
}

launch_server() {
    local -a args=(
        --no-defaults
        --datadir="$DATA_DIR"
        --tmpdir="$TMP_DIR"
        --socket="$SOCKET"
        --pid-file="$PID_FILE"
        --log-error="$LOG_FILE"
        --port="$PORT"
        --bind-address=127.0.0.1
        --skip-name-resolve
        --max-connections=500
        # What Debian's own /etc/mysql config sets; --no-defaults drops it and
        # MariaDB's compiled-in default would be latin1.
        --character-set-server=utf8mb4
        --collation-server=utf8mb4_general_ci
    )
    # Durability settings are deliberately left at their defaults, so that
    # fault tests can kill the server and check acknowledged writes survived.
    if [[ "$(id -u)" -eq 0 ]]; then
        # mariadbd refuses to run as root without an explicit --user.
        args+=(--user="$(whoami)")
    fi
    mkdir -p "$TMP_DIR"
    rm -f "$PID_FILE"
    [[ "$SOCKET" == "$BASE_DIR"/* ]] || rm -f "$SOCKET"
    log "starting mariadbd on 127.0.0.1:$PORT (log: $LOG_FILE)"
    local log_offset=0
    [[ -f "$LOG_FILE" ]] && log_offset="$(wc -c <"$LOG_FILE")"
    {
        echo
        echo "==== $(date '+%Y-%m-%d %H:%M:%S') scripts/mariadb.sh start (port $PORT) ===="
    } >>"$LOG_FILE"
    # stdin/stdout/stderr must not be inherited: `$(mariadb.sh start)` would
    # otherwise wait for the server to exit. fd 9 is the start lock.
    "$MARIADBD" "${args[@]}" </dev/null >>"$LOG_FILE" 2>&1 9>&- &
    local launched=$!

    wait_started mariadbd "$launched" "$LOG_FILE" "$log_offset" ||
        die "could not start MariaDB on 127.0.0.1:$PORT"
}

create_fixtures() {
    # Idempotent; ALTER USER also resets the password should it have changed.
    local user_sql="" host
    for host in 127.0.0.1 localhost; do
        user_sql+="CREATE USER IF NOT EXISTS '$KV_USER'@'$host' IDENTIFIED BY '$KV_PASSWORD';
ALTER USER '$KV_USER'@'$host' IDENTIFIED BY '$KV_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$KV_USER'@'$host';
"
    done
    sql <<SQL || die "could not create the $KV_USER user / $KV_DATABASE database"
$user_sql
CREATE DATABASE IF NOT EXISTS \`$KV_DATABASE\`;
FLUSH PRIVILEGES;
SQL
}

cmd_start() {
    require_port KV_TEST_MYSQL_PORT "$PORT"
    mkdir -p "$BASE_DIR"
    # Serialise concurrent `start`s of the same checkout.
    exec 9>"$LOCK_FILE"
    flock 9 2>/dev/null || true

    ensure_installed

    local pid
    if pid="$(running_pid)"; then
        if answering; then
            local actual_port
            actual_port="$(sql -e 'SELECT @@port')" || die "server (pid $pid) answers ping but not queries"
            if [[ "$actual_port" != "$PORT" ]]; then
                die "the server of $DATA_DIR is already running on port $actual_port, not $PORT; run '$0 stop' first"
            fi
            log "reusing running server (pid $pid) on 127.0.0.1:$PORT"
            create_fixtures
            server_url "$PORT"
            return 0
        fi
        die "mariadbd (pid $pid) of $DATA_DIR is running but does not answer on $SOCKET; see $LOG_FILE or run '$0 stop'"
    fi

    if port_in_use "$PORT"; then
        die "port $PORT on 127.0.0.1 is already used by another process; set KV_TEST_MYSQL_PORT to a free port"
    fi

    initialise_datadir
    launch_server
    create_fixtures
    log "MariaDB $(sql -e 'SELECT VERSION()') is up (pid $(running_pid || echo '?'))"
    server_url "$PORT"
}

cmd_stop() {
    find_tools
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping mariadbd (pid $pid)"
    if ! { [[ -n "$ADMIN" ]] && admin shutdown >/dev/null 2>&1; }; then
        # SIGTERM is also a clean shutdown for mariadbd.
        kill -TERM "$pid" 2>/dev/null || true
    fi
    local i
    for ((i = 0; i < 600; i++)); do # ~60 s
        alive "$pid" || {
            log "stopped"
            return 0
        }
        sleep 0.1
    done
    die "mariadbd (pid $pid) did not exit within 60 s; see $LOG_FILE"
}

cmd_status() {
    find_tools
    local pid
    if pid="$(running_pid)" && answering; then
        log "running (pid $pid, socket $SOCKET)"
        return 0
    fi
    log "not running"
    return 1
}

cmd_url() {
    find_tools
    if ! running_pid >/dev/null || ! answering; then
        die "not running (start it with '$0 start')"
    fi
    local actual_port
    actual_port="$(sql -e 'SELECT @@port')" || die "could not query the server's port"
    server_url "$actual_port"
}

[[ $# -eq 1 ]] || usage
case "$1" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) cmd_url ;;
*) usage ;;
esac
