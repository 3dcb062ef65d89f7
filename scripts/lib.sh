# shellcheck shell=bash
# Helpers shared by the project's scripts: source it, don't run it. The sourcing script defines
# log (with its own prefix) before calling these.

# die MESSAGE: logs the error and exits 1.
die() {
    log "error: $*"
    exit 1
}

# require_port VARIABLE VALUE: fails unless VALUE is a TCP port number.
require_port() {
    if ! [[ "$2" =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then
        die "$1 must be a TCP port number, got '$2'"
    fi
}

# apt_install PACKAGE...: installs Debian packages non-interactively, as root or through sudo,
# waiting (instead of failing) while another apt or dpkg process holds the lock.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* manually"
    local -a sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available: install $* manually"
        sudo=(sudo)
    fi
    log "installing $* with apt-get"
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends "$@" >&2
}

# alive PID: whether PID is a live process. A zombie counts as dead: a killed server can linger
# as one until its new parent gets round to reaping it.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    if stat="$(cat "/proc/$1/stat" 2>/dev/null)"; then
        stat="${stat##*) }"
        [[ "${stat:0:1}" != Z ]] || return 1
    fi
    return 0
}

# wait_started NAME PID LOG_FILE LOG_OFFSET: waits up to about 30 s for the sourcing script's
# `answering` to succeed while PID lives. When it does not, prints what the server logged since
# LOG_OFFSET, stops PID and fails.
wait_started() {
    local name="$1" launched="$2" log_file="$3" log_offset="$4" i
    for ((i = 0; i < 300; i++)); do
        if answering; then
            return 0
        fi
        if ! alive "$launched"; then
            break
        fi
        sleep 0.1
    done
    log "$name did not come up; its log ($log_file) says:"
    tail -c "+$((log_offset + 1))" "$log_file" | tail -n 40 >&2 || true
    if alive "$launched"; then
        kill -TERM "$launched" 2>/dev/null || true
    fi
    return 1
}

# use_cargo_lambda REPO: installs cargo-lambda (pinned, with the zig it cross-compiles with) from
# PyPI into REPO/target/venv-tools when that venv lacks it, and puts the venv first on PATH.
CARGO_LAMBDA_VERSION="1.9.2"
use_cargo_lambda() {
    local venv="$1/target/venv-tools"
    if ! "$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q "^cargo-lambda $CARGO_LAMBDA_VERSION "; then
        log "installing cargo-lambda $CARGO_LAMBDA_VERSION into $venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
    fi
    export PATH="$venv/bin:$PATH"
}
