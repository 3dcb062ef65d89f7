#!/usr/bin/env bash
# Private AWS Secrets Manager emulator (moto) for the test suite.
#
#   scripts/moto.sh start    install moto if needed, start (or reuse) the private
#                            server, print its URL on the last line
#   scripts/moto.sh stop     shut the private server down (no-op if stopped)
#   scripts/moto.sh status   exit 0 if the private server is up, 1 otherwise
#   scripts/moto.sh url      print the URL of the running server
#
# moto (pinned below) is installed with pip into a private virtualenv,
# <repo>/target/venv-tools-moto/ (re-created when the pin changes); the server
# keeps its pid and log under <repo>/target/moto/ and listens on
# 127.0.0.1:${KV_TEST_MOTO_PORT:-5055} only. Its state lives in memory: `stop`
# forgets every secret. `cargo clean` wipes the virtualenv; the next `start`
# re-creates it.
#
# The emulator accepts any credentials; tests use fake ones (AWS_ACCESS_KEY_ID
# testing, region us-east-1). Nothing here ever talks to AWS.
#
# Progress messages go to stderr; stdout carries only the URL, so
# `url=$(scripts/moto.sh start)` works, e.g.
#   export KV_TEST_SECRETS_ENDPOINT="$(scripts/moto.sh start)"
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
MOTO_REQUIREMENT="moto[server]==5.2.5"
VENV_DIR="$REPO_ROOT/target/venv-tools-moto"
VENV_STAMP="$VENV_DIR/.requirements"
BASE_DIR="$REPO_ROOT/target/moto"
PID_FILE="$BASE_DIR/moto.pid"
LOG_FILE="$BASE_DIR/moto.log"
LOCK_FILE="$BASE_DIR/.lock"
HOST="127.0.0.1"
PORT="${KV_TEST_MOTO_PORT:-5055}"

log() { printf 'moto.sh: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    echo "usage: $0 {start|stop|status|url}" >&2
    exit 2
}

server_url() { echo "http://$HOST:$PORT"; }

# The private virtualenv with moto, (re-)created when missing, broken or pinned differently.
ensure_installed() {
    if [[ -x "$VENV_DIR/bin/moto_server" && -f "$VENV_STAMP" ]] &&
        [[ "$(cat "$VENV_STAMP")" == "$MOTO_REQUIREMENT" ]]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    log "creating $VENV_DIR with $MOTO_REQUIREMENT"
    rm -rf "$VENV_DIR"
    if ! python3 -m venv "$VENV_DIR" >&2; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        rm -rf "$VENV_DIR"
        apt_install python3-venv
        python3 -m venv "$VENV_DIR" >&2 || die "python3 -m venv failed"
    fi
    "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
        "$MOTO_REQUIREMENT" >&2 || {
        rm -rf "$VENV_DIR"
        die "pip could not install $MOTO_REQUIREMENT"
    }
    echo "$MOTO_REQUIREMENT" >"$VENV_STAMP"
}

# PID of our moto server if its process is alive, else fails.
running_pid() {
    [[ -s "$PID_FILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [[ -n "$pid" ]] || return 1
    alive "$pid" || return 1
    # Guard against a recycled PID that now belongs to something else.
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q moto_server || return 1
    fi
    echo "$pid"
}

# Whether the server on PORT answers as moto does (its own API, not just any HTTP server).
answering() {
    curl --silent --fail --max-time 2 --output /dev/null "$(server_url)/moto-api/data.json" 2>/dev/null
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# The port of the running server, from its command line.
running_port() {
    local pid="$1"
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -A1 -x -- '-p' | tail -n 1
}

launch_server() {
    rm -f "$PID_FILE"
    log "starting moto_server on $HOST:$PORT (log: $LOG_FILE)"
    local log_offset=0
    [[ -f "$LOG_FILE" ]] && log_offset="$(wc -c <"$LOG_FILE")"
    {
        echo
        echo "==== $(date '+%Y-%m-%d %H:%M:%S') scripts/moto.sh start (port $PORT) ===="
    } >>"$LOG_FILE"
    # stdin/stdout/stderr must not be inherited: `$(moto.sh start)` would otherwise wait
    # for the server to exit. fd 9 is the start lock.
    "$VENV_DIR/bin/moto_server" -H "$HOST" -p "$PORT" </dev/null >>"$LOG_FILE" 2>&1 9>&- &
    local launched=$!
    echo "$launched" >"$PID_FILE"

    if ! wait_started moto_server "$launched" "$LOG_FILE" "$log_offset"; then
        rm -f "$PID_FILE"
        die "could not start moto on $HOST:$PORT"
    fi
}

cmd_start() {
    require_port KV_TEST_MOTO_PORT "$PORT"
    mkdir -p "$BASE_DIR"
    # Serialise concurrent `start`s of the same checkout.
    exec 9>"$LOCK_FILE"
    flock 9 2>/dev/null || true

    ensure_installed

    local pid
    if pid="$(running_pid)"; then
        local actual_port
        actual_port="$(running_port "$pid")"
        if [[ "$actual_port" != "$PORT" ]]; then
            die "moto (pid $pid) is already running on port $actual_port, not $PORT; run '$0 stop' first"
        fi
        if answering; then
            log "reusing running server (pid $pid) on $HOST:$PORT"
            server_url
            return 0
        fi
        die "moto_server (pid $pid) is running but does not answer on $HOST:$PORT; see $LOG_FILE or run '$0 stop'"
    fi

    if port_in_use "$PORT"; then
        die "port $PORT on $HOST is already used by another process; set KV_TEST_MOTO_PORT to a free port"
    fi

    launch_server
    log "moto $("$VENV_DIR/bin/python" -c 'import moto; print(moto.__version__)') is up (pid $(running_pid || echo '?'))"
    server_url
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping moto_server (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do # ~10 s
        if ! alive "$pid"; then
            rm -f "$PID_FILE"
            log "stopped"
            return 0
        fi
        sleep 0.1
    done
    log "moto_server (pid $pid) ignored SIGTERM for 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
}

cmd_status() {
    local pid
    if pid="$(running_pid)" && answering; then
        log "running (pid $pid, $(server_url))"
        return 0
    fi
    log "not running"
    return 1
}

cmd_url() {
    local pid
    if ! pid="$(running_pid)"; then
        die "not running (start it with '$0 start')"
    fi
    PORT="$(running_port "$pid")"
    answering || die "moto_server (pid $pid) does not answer on $HOST:$PORT; see $LOG_FILE"
    server_url
}

[[ $# -eq 1 ]] || usage
case "$1" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) cmd_url ;;
*) usage ;;
esac
