#!/usr/bin/env bash
# The everyday test command, and the first half of CI (.ci/run runs scripts/ci.sh after it):
#
#   ./scripts/test.sh [NEXTEST ARGS...]      e.g. ./scripts/test.sh register
#
# 1. Starts, or reuses, the private MariaDB (scripts/mariadb.sh, 127.0.0.1:${KV_TEST_MYSQL_PORT:-33061})
#    and Secrets Manager emulator (scripts/moto.sh, 127.0.0.1:${KV_TEST_MOTO_PORT:-5055}), installing
#    them on first use, and exports KV_TEST_MYSQL_URL and KV_TEST_SECRETS_ENDPOINT (a variable
#    already set names a server to use instead). Without them the MySQL and Secrets Manager
#    tests skip themselves; under CI=true that is a failure.
# 2. cargo fmt --check and cargo clippy -D warnings.
# 3. Every test, on SQLite and MySQL: cargo nextest run --workspace --all-targets (cargo test
#    without nextest). The last line repeats the counts: "tests: N passed, N failed, N skipped".
# 4. Stops the servers it started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

summary=""
# shellcheck disable=SC2317 # the EXIT trap calls it
finish() {
    local rc=$?
    stop_services
    [[ -z "$summary" ]] || echo "$summary"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for service in "mariadb KV_TEST_MYSQL_URL" "moto KV_TEST_SECRETS_ENDPOINT"; do
    read -r name variable <<<"$service"
    step "$name"
    start_service "$name" "$variable" && continue
    [[ ! "${CI:-}" =~ ^(true|TRUE|True|1)$ ]] || die "CI=true: $name did not start, and its tests must not be skipped"
    printf '\n%s\n* WARNING: %s did not start (see above): the tests that need it SKIP. *\n%s\n\n' \
        "$(printf '*%.0s' {1..72})" "$name" "$(printf '*%.0s' {1..72})" >&2
done

step "cargo fmt --all -- --check"
cargo fmt --all -- --check
step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

mkdir -p target
rm -f target/test-summary.txt
if ! command -v cargo-nextest >/dev/null; then
    step "cargo test (cargo-nextest is not installed: cargo install cargo-nextest --locked)"
    cargo test --workspace --all-targets --no-fail-fast "$@"
    exit
fi
step "cargo nextest run --workspace --all-targets"
status=0
cargo nextest run --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee target/test-output.txt ||
    status=$?
# nextest's "Summary [ 30s] 143 tests run: 141 passed, 2 failed, 1 skipped" (parts absent at 0).
counts="$(grep -E '^ *Summary .* tests? run:' target/test-output.txt | tail -n 1)" || true
count() { [[ "$counts" =~ ([0-9]+)\ $1 ]] && echo "${BASH_REMATCH[1]}" || echo 0; }
[[ -z "$counts" ]] || summary="tests: $(count passed) passed, $(count failed) failed, $(count skipped) skipped"
echo "$summary" >target/test-summary.txt # .ci/run repeats it last
exit "$status"
