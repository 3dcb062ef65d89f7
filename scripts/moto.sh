#!/usr/bin/env bash
# Private AWS Secrets Manager emulator (moto) for tests/secrets.rs:
#
#   scripts/moto.sh start    install moto (the hashed lock scripts/requirements-moto.txt) into
#                            target/venv-moto if needed, start or reuse the server, print its URL
#   scripts/moto.sh stop     shut it down (its secrets live in memory and are forgotten)
#   scripts/moto.sh status   exit 0 if it is up
#
# It listens on 127.0.0.1:${KV_TEST_MOTO_PORT:-5055} and accepts any credentials; nothing
# here talks to AWS. E.g.  export KV_TEST_SECRETS_ENDPOINT="$(scripts/moto.sh start)"
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASE_DIR="$REPO_ROOT/target/moto"
PID_FILE="$BASE_DIR/moto.pid"
PORT="${KV_TEST_MOTO_PORT:-5055}"
URL="http://127.0.0.1:$PORT"

# moto's own API, not just any HTTP server on the port.
answering() { curl -sf --max-time 2 -o /dev/null "$URL/moto-api/data.json"; }
running_pid() { pid_from "$PID_FILE" "moto_server .*-p $PORT( |$)"; }

start() {
    [[ "$PORT" =~ ^[0-9]+$ ]] || die "KV_TEST_MOTO_PORT must be a port number, got '$PORT'"
    mkdir -p "$BASE_DIR"
    exec 9>"$BASE_DIR/.lock" # one `start` at a time
    flock 9
    py_tools moto 'moto[server]'
    if running_pid >/dev/null; then
        answering || die "moto_server runs but does not answer on $URL; run '$0 stop'"
        log "reusing the running server on $URL"
    else
        if pid="$(pid_from "$PID_FILE" moto_server)"; then
            die "moto_server (pid $pid) runs on another port than $PORT; run '$0 stop' first"
        fi
        port_in_use "$PORT" && die "127.0.0.1:$PORT is taken by another process: set KV_TEST_MOTO_PORT"
        launch "moto_server on $URL" "$BASE_DIR/moto.log" moto_server -H 127.0.0.1 -p "$PORT" ||
            die "could not start moto on $URL"
        echo "$LAUNCHED_PID" >"$PID_FILE"
    fi
    echo "$URL"
}

case "${1:-}" in
start) start ;;
stop) if pid="$(pid_from "$PID_FILE" moto_server)"; then stop_pid moto_server "$pid"; fi ;;
status) running_pid >/dev/null && answering ;;
*) die "usage: $0 {start|stop|status}" ;;
esac
