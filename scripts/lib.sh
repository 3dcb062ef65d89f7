# shellcheck shell=bash
# Helpers shared by the project's scripts: source it, don't run it. The sourcing script defines
# log and die (each with its own prefix) before calling these.

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
