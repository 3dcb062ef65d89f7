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
#    through (e.g. a test name filter), then scripts/fuzz.sh (schemathesis
#    against the OpenAPI document) and scripts/check-lambda.sh (cargo lambda
#    build --release, then every function under cargo lambda watch). The last line of the run repeats the test
#    runner's counts: "tests: N passed, N failed, N skipped".
#    Likewise the Secrets Manager emulator (scripts/moto.sh, moto in a private
#    virtualenv on 127.0.0.1:${KV_TEST_MOTO_PORT:-5055}), exported as
#    KV_TEST_SECRETS_ENDPOINT for tests/secrets.rs, unless already set.
#    Then scripts/check-containers.sh checks Dockerfile and docker-compose.yml,
#    and scripts/check-template.sh lints template.yaml (cfn-lint) and checks it
#    against the workspace's functions and the contract's routes.
# 4. stops the MariaDB server and moto again if this script started them; a
#    server that was already running is left alone.
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

# Services this run started, stopped again on exit (one trap for all of them).
stop_mariadb=0
stop_moto=0
# The test runner's own counts, repeated as the very last line of the run.
summary=""
stop_services_on_exit() {
    local rc=$?
    if ((stop_moto)); then
        say "stopping the Secrets Manager emulator started by this run"
        ./scripts/moto.sh stop || true
    fi
    if ((stop_mariadb)); then
        say "stopping the MariaDB test server started by this run"
        ./scripts/mariadb.sh stop || true
    fi
    if [[ -n $summary ]]; then
        echo "$summary"
    fi
    exit "$rc"
}
trap stop_services_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${KV_TEST_MYSQL_URL:-}" ]]; then
    say "using the MySQL server from KV_TEST_MYSQL_URL (not starting MariaDB)"
    export KV_TEST_MYSQL_URL
else
    say "starting the MariaDB test server"
    if ! ./scripts/mariadb.sh status >/dev/null 2>&1; then
        # Set before `start`, so that a half-started server is stopped too.
        stop_mariadb=1
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

# --- Secrets Manager emulator (moto) ----------------------------------------

if [[ -n "${KV_TEST_SECRETS_ENDPOINT:-}" ]]; then
    say "using the Secrets Manager endpoint from KV_TEST_SECRETS_ENDPOINT (not starting moto)"
    export KV_TEST_SECRETS_ENDPOINT
else
    say "starting the Secrets Manager emulator (moto)"
    if ! ./scripts/moto.sh status >/dev/null 2>&1; then
        stop_moto=1
    fi
    if moto_url="$(./scripts/moto.sh start)" && [[ -n "$moto_url" ]]; then
        export KV_TEST_SECRETS_ENDPOINT="${moto_url##*$'\n'}" # last line
        say "KV_TEST_SECRETS_ENDPOINT=$KV_TEST_SECRETS_ENDPOINT"
    elif is_ci; then
        echo "test.sh: ERROR: could not start the Secrets Manager emulator (see above)." >&2
        echo "test.sh: CI=true, so the Secrets Manager tests must not be skipped: failing." >&2
        exit 1
    else
        echo "test.sh: WARNING: could not start moto: the Secrets Manager tests will be SKIPPED." >&2
    fi
fi

# --- deployment files (no Docker engine or AWS account needed) --------------

run ./scripts/check-containers.sh
run ./scripts/check-template.sh

# --- lints and tests --------------------------------------------------------

run cargo fmt --all -- --check
run cargo clippy --workspace --all-targets -- -D warnings

status=0
mkdir -p target
if command -v cargo-nextest >/dev/null 2>&1; then
    run cargo nextest run --workspace --all-targets --no-fail-fast "$@" 2>&1 |
        tee target/test-output.txt || status=$?
    # "Summary [ 30s] 143 tests run: 143 passed, 0 skipped" (", N failed" when some did).
    counts=$(grep -E '^ *Summary .* tests? run:' target/test-output.txt | tail -n 1 || true)
    if [[ $counts =~ ([0-9]+)\ passed ]]; then
        passed=${BASH_REMATCH[1]}
        failed=0
        [[ $counts =~ ([0-9]+)\ failed ]] && failed=${BASH_REMATCH[1]}
        skipped=0
        [[ $counts =~ ([0-9]+)\ skipped ]] && skipped=${BASH_REMATCH[1]}
        summary="tests: $passed passed, $failed failed, $skipped skipped"
    fi
else
    say "cargo-nextest not found, using cargo test (faster: cargo install cargo-nextest --locked)"
    run cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?
fi
# Contract fuzzing of the running adapter against its OpenAPI document, and the Lambda
# functions built with cargo-lambda and invoked under `cargo lambda watch`; even if a test
# failed, to report everything in one go.
run ./scripts/fuzz.sh || status=$?
run ./scripts/check-lambda.sh || status=$?

if ((status != 0)); then
    say "FAILED (exit code $status)"
    exit "$status"
fi
say "all checks passed"
