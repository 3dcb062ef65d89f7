#!/usr/bin/env bash
# Private MariaDB server for the tests, CI and the bench:
#
#   scripts/mariadb.sh start    install MariaDB if needed (apt-get), start or reuse the server,
#                               print its server-level URL: mysql://kv:kv-test-password@127.0.0.1:PORT
#   scripts/mariadb.sh stop     shut it down (nothing to do if it is not running)
#   scripts/mariadb.sh status   exit 0 if it is up
#
# It reads no option file (--no-defaults), keeps everything under target/mariadb/ (or
# $KV_MARIADB_DIR: tests/api/faults.rs runs servers of its own that way) and listens on
# 127.0.0.1:${KV_TEST_MYSQL_PORT:-33061} only. User kv (password kv-test-password, a local test
# fixture) has every privilege: each test creates and drops its own database. A database `kv`
# is there for manual use. Durability settings stay at MariaDB's defaults, so that the fault
# tests can kill the server and find acknowledged writes. With KV_MARIADB_SSL_DIR (tests/api/tls.rs)
# the server speaks TLS with that directory's ca.pem, server-cert.pem and server-key.pem.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASE_DIR="${KV_MARIADB_DIR:-$REPO_ROOT/target/mariadb}"
DATA_DIR="$BASE_DIR/data"
PID_FILE="$BASE_DIR/mariadbd.pid"
LOG_FILE="$BASE_DIR/mariadbd.log"
PORT="${KV_TEST_MYSQL_PORT:-33061}"
URL="mysql://kv:kv-test-password@127.0.0.1:$PORT"
# A Unix socket path has at most ~107 bytes: a deep checkout's goes to /tmp, keyed by its path.
SOCKET="$BASE_DIR/mariadbd.sock"
((${#SOCKET} <= 100)) || SOCKET="/tmp/kv-mariadb-$(cksum <<<"$BASE_DIR" | cut -d' ' -f1).sock"

sql() { mariadb --no-defaults --socket="$SOCKET" --user=root --batch --skip-column-names "$@"; }
answering() { mariadb-admin --no-defaults --socket="$SOCKET" --user=root --connect-timeout=2 ping >/dev/null 2>&1; }
running_pid() { pid_from "$PID_FILE" '(mariadbd|mysqld)'; }

start() {
    [[ "$PORT" =~ ^[0-9]+$ ]] || die "KV_TEST_MYSQL_PORT must be a port number, got '$PORT'"
    mkdir -p "$BASE_DIR"
    exec 9>"$BASE_DIR/.lock" # one `start` at a time per directory
    flock 9
    if ! command -v mariadbd >/dev/null || ! command -v mariadb-admin >/dev/null; then
        apt_install mariadb-server mariadb-client
    fi
    if running_pid >/dev/null; then
        answering || die "mariadbd of $DATA_DIR runs but does not answer; see $LOG_FILE or run '$0 stop'"
        [[ "$(sql -e 'SELECT @@port')" == "$PORT" ]] ||
            die "the server of $DATA_DIR listens on another port than $PORT; run '$0 stop' first"
        log "reusing the running server on 127.0.0.1:$PORT"
    else
        port_in_use "$PORT" && die "127.0.0.1:$PORT is taken by another process: set KV_TEST_MYSQL_PORT"
        if [[ ! -f "$BASE_DIR/.initialised" ]]; then
            log "initialising $DATA_DIR"
            rm -rf "$DATA_DIR"
            mariadb-install-db --no-defaults --auth-root-authentication-method=normal --skip-test-db \
                --datadir="$DATA_DIR" --user="$(whoami)" >"$BASE_DIR/install-db.log" 2>&1 ||
                die "mariadb-install-db failed: see $BASE_DIR/install-db.log"
            touch "$BASE_DIR/.initialised"
        fi
        mkdir -p "$BASE_DIR/tmp"
        rm -f "$PID_FILE"
        local -a tls=()
        if [[ -n "${KV_MARIADB_SSL_DIR:-}" ]]; then
            tls=(--ssl-ca="$KV_MARIADB_SSL_DIR/ca.pem" --ssl-cert="$KV_MARIADB_SSL_DIR/server-cert.pem"
                --ssl-key="$KV_MARIADB_SSL_DIR/server-key.pem")
        fi
        # utf8mb4: what Debian's /etc/mysql configuration sets, which --no-defaults skips.
        # --user: mariadbd refuses to run as root without it.
        launch "mariadbd on 127.0.0.1:$PORT" "$LOG_FILE" mariadbd --no-defaults --datadir="$DATA_DIR" \
            --tmpdir="$BASE_DIR/tmp" --socket="$SOCKET" --pid-file="$PID_FILE" --log-error="$LOG_FILE" \
            --port="$PORT" --bind-address=127.0.0.1 --skip-name-resolve --max-connections=500 \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --user="$(whoami)" "${tls[@]}" ||
            die "could not start MariaDB on 127.0.0.1:$PORT"
        log "MariaDB $(sql -e 'SELECT VERSION()') is up on 127.0.0.1:$PORT"
    fi
    local host
    # With GRANT OPTION: tests make users of their own (a user whom max_connections limits).
    for host in 127.0.0.1 localhost; do
        sql -e "CREATE USER IF NOT EXISTS 'kv'@'$host' IDENTIFIED BY 'kv-test-password';
            ALTER USER 'kv'@'$host' IDENTIFIED BY 'kv-test-password';
            GRANT ALL PRIVILEGES ON *.* TO 'kv'@'$host' WITH GRANT OPTION;"
    done
    sql -e 'CREATE DATABASE IF NOT EXISTS kv'
    echo "$URL"
}

case "${1:-}" in
start) start ;;
stop) if pid="$(running_pid)"; then stop_pid mariadbd "$pid"; fi ;;
status) running_pid >/dev/null && answering ;;
*) die "usage: $0 {start|stop|status}" ;;
esac
