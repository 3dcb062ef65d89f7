# shellcheck shell=bash
# Helpers shared by scripts/*.sh and bench/run.sh: source it, don't run it.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# Debian keeps mariadbd in /usr/sbin, which is not on a normal user's PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
step() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*" >&2; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# apt_install PACKAGE...: Debian packages, as root or through sudo, waiting for the dpkg lock.
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
    local -a sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    log "installing $* with apt-get"
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends "$@" >&2
}

# py_tools VENV PACKAGE...: installs the lock scripts/requirements-VENV.txt (pip-compile's,
# from scripts/requirements-VENV.in: every package at one version, with the hashes of its
# files) into target/venv-VENV with --require-hashes, once per version of the lock, and puts the
# venv first on PATH. A lock that changed gets a fresh venv, so that it holds exactly the lock.
# PACKAGE...: what the caller needs, each of which the lock must pin.
py_tools() {
    local venv="$REPO_ROOT/target/venv-$1" lock="$REPO_ROOT/scripts/requirements-$1.txt"
    shift
    [[ -f "$lock" ]] || die "no lock $lock for the venv: see scripts/requirements-ci.in"
    local package stamp
    for package in "$@"; do
        package="${package%%[*}"
        grep -qiE "^${package//[-_.]/[-_.]}==" "$lock" || die "$lock does not pin $package"
    done
    stamp="$venv/.installed-$(cksum <"$lock" | cut -d' ' -f1)"
    if [[ ! -f "$stamp" ]]; then
        log "installing $lock into $venv"
        command -v python3 >/dev/null || apt_install python3 python3-venv
        python3 -m venv --clear "$venv" >&2 || { apt_install python3-venv && python3 -m venv --clear "$venv" >&2; }
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
            --only-binary :all: -r "$lock" >&2 || die "pip could not install $lock"
        touch "$stamp"
    fi
    export PATH="$venv/bin:$PATH"
}

# lambda_functions: the Lambda functions, one a line: every bin target of the workspace packages
# under functions/ (one crate per function, or one crate with src/bin/<name>.rs).
lambda_functions() {
    cargo metadata --no-deps --format-version 1 --manifest-path "$REPO_ROOT/Cargo.toml" |
        jq -r '.workspace_root as $root | .packages[]
            | select(.manifest_path | startswith($root + "/functions/"))
            | .targets[] | select(.kind | index("bin")) | .name' | sort
}

# alive PID: whether PID lives; a zombie (killed, not yet reaped) counts as dead.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# pid_from FILE PATTERN: the PID in FILE, if that process lives and its command line matches.
pid_from() {
    local pid
    pid="$(tr -dc '0-9' 2>/dev/null <"$1")" || return 1
    [[ -n "$pid" ]] && alive "$pid" || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -Eq "$2" || return 1
    echo "$pid"
}

# launch NAME LOG_FILE COMMAND...: starts a server in the background, its output appended to
# LOG_FILE, and waits up to 30 s for the caller's `answering` to succeed. Sets LAUNCHED_PID.
launch() {
    local name="$1" log_file="$2" offset=0 i
    shift 2
    [[ -f "$log_file" ]] && offset="$(wc -c <"$log_file")"
    echo "==== $(date '+%F %T') starting $name" >>"$log_file"
    # No inherited stdout (`url=$(x.sh start)` would wait for the server) nor lock fd 9.
    "$@" </dev/null >>"$log_file" 2>&1 9>&- &
    LAUNCHED_PID=$!
    for ((i = 0; i < 300; i++)); do
        answering && return 0
        alive "$LAUNCHED_PID" || break
        sleep 0.1
    done
    log "$name did not come up; $log_file says:"
    tail -c "+$((offset + 1))" "$log_file" | tail -n 40 >&2
    kill -TERM "$LAUNCHED_PID" 2>/dev/null
    return 1
}

# stop_pid NAME PID: SIGTERM, then waits up to 60 s (SIGKILL after that).
stop_pid() {
    local i
    log "stopping $1 (pid $2)"
    kill -TERM "$2" 2>/dev/null || return 0
    for ((i = 0; i < 600; i++)); do
        alive "$2" || return 0
        sleep 0.1
    done
    log "$1 (pid $2) ignored SIGTERM for 60 s: killing it"
    kill -KILL "$2" 2>/dev/null || true
}

# start_service NAME VARIABLE: unless VARIABLE is set already, starts (or reuses) the server of
# scripts/NAME.sh and exports VARIABLE as its URL. stop_services stops what this run started.
STARTED_SERVICES=()
start_service() {
    local url
    if [[ -n "${!2:-}" ]]; then
        log "using $2=${!2} (not starting $1)"
        export "${2?}"
        return 0
    fi
    "$REPO_ROOT/scripts/$1.sh" status >/dev/null 2>&1 || STARTED_SERVICES+=("$1")
    url="$("$REPO_ROOT/scripts/$1.sh" start)" && [[ -n "$url" ]] || return 1
    export "$2=$url"
    log "$2=$url"
}
stop_services() {
    local name
    for name in "${STARTED_SERVICES[@]}"; do "$REPO_ROOT/scripts/$name.sh" stop || true; done
    STARTED_SERVICES=()
}
