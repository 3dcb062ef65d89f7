#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run):
#
#   ./scripts/test.sh [ARGS...]
#
# 1. starts the private MariaDB test server (scripts/mariadb.sh; installs
#    MariaDB with apt-get on first use) and exports
#      KV_TEST_MYSQL_URL=mysql://kv:kv-test-password@127.0.0.1:<port>
#    a server-level URL without a database: every test appends its own fresh
#    database (kv_test_<random>). The port is ${KV_TEST_MYSQL_PORT:-33061}.
#    If KV_TEST_MYSQL_URL is already set, that server is used instead and no
#    local server is started.
#    If MariaDB cannot be started, CI (CI=true) fails here; locally a warning
#    is printed and the MySQL tests skip themselves.
# 2. cargo fmt --check, cargo clippy -D warnings
# 3. the tests: cargo nextest (if installed) or cargo test, with ARGS passed
#    through (e.g. a test name filter), then the doc tests (which nextest
#    cannot run) without ARGS, then scripts/fuzz.sh (schemathesis against the
#    OpenAPI document).
# 4. stops the MariaDB server again if this script started it; a server that
#    was already running is left alone.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n==> %s\n' "$*" >&2; }
run() {
    say "$*"
    "$@"
}

is_ci() {
    case "${CI:-}" in
    true | TRUE | True | 1) return 0 ;;
    *) return 1 ;;
    esac
}

# --- MariaDB ----------------------------------------------------------------

stop_mariadb_on_exit() {
    local rc=$?
    say "stopping the MariaDB test server started by this run"
    ./scripts/mariadb.sh stop || true
    exit "$rc"
}

if [[ -n "${KV_TEST_MYSQL_URL:-}" ]]; then
    say "using the MySQL server from KV_TEST_MYSQL_URL (not starting MariaDB)"
    export KV_TEST_MYSQL_URL
else
    say "starting the MariaDB test server"
    if ! ./scripts/mariadb.sh status >/dev/null 2>&1; then
        # Set up before `start`, so that a half-started server is stopped too.
        trap stop_mariadb_on_exit EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
    fi
    if mariadb_url="$(./scripts/mariadb.sh start)" && [[ -n "$mariadb_url" ]]; then
        mariadb_url="${mariadb_url##*$'\n'}" # last line
        export KV_TEST_MYSQL_URL="${mariadb_url%/kv}" # server-level URL
        say "KV_TEST_MYSQL_URL=$KV_TEST_MYSQL_URL"
    elif is_ci; then
        echo "test.sh: ERROR: could not start the MariaDB test server (see above)." >&2
        echo "test.sh: CI=true, so the MySQL tests must not be skipped: failing." >&2
        exit 1
    else
        cat >&2 <<'EOF'

************************************************************************
* WARNING: could not start the MariaDB test server (see above).        *
* KV_TEST_MYSQL_URL is NOT set: the MySQL tests will be SKIPPED.       *
* (In CI, with CI=true, this is an error.)                             *
************************************************************************

EOF
    fi
fi

# --- lints and tests --------------------------------------------------------

run cargo fmt --all -- --check
run cargo clippy --workspace --all-targets -- -D warnings

status=0
if command -v cargo-nextest >/dev/null 2>&1; then
    run cargo nextest run --workspace --all-targets --no-fail-fast "$@" || status=$?
else
    say "cargo-nextest not found, using cargo test (faster: cargo install cargo-nextest --locked)"
    run cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?
fi
# Run the doc tests even if a test failed, to report everything in one go.
run cargo test --workspace --doc --no-fail-fast || status=$?
# Contract fuzzing of the running adapter against its OpenAPI document.
run ./scripts/fuzz.sh || status=$?

if ((status != 0)); then
    say "FAILED (exit code $status)"
    exit "$status"
fi
say "all checks passed"
