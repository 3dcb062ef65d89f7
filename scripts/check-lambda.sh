#!/usr/bin/env bash
# End-to-end check of the Lambda functions with cargo-lambda (CI runs it):
#
#   scripts/check-lambda.sh            (from any directory)
#
# 1. Installs cargo-lambda (pinned, from PyPI; the wheel ships the binary and pulls in
#    Zig through `ziglang`) into a private venv under target/venv-tools when missing, and
#    builds every function with `cargo lambda build --release` for the deploy architecture
#    (arm64, as template.yaml deploys them). Prints each bootstrap's size.
# 2. Starts the private MariaDB (scripts/mariadb.sh), drops and recreates the database
#    kv_lambda_check, and applies the schema the way a deployment does: by invoking
#    db-migrate with a CloudFormation custom-resource Create event whose ResponseURL is a
#    tiny local HTTP server, which must receive Status SUCCESS.
# 3. Runs `cargo lambda watch` in the background (functions built for the host, in debug,
#    against that MySQL database, with a local-development JWT key) and invokes the
#    functions in the contract's order with the API Gateway event fixtures of
#    tests/fixtures/events (HTTP API v2, plus one REST API v1 event with stage `prod`),
#    checking status codes and bodies exactly; looks at the rows in MariaDB; and sends
#    real HTTP requests with curl through watch's HTTP endpoint (the routes of
#    [workspace.metadata.lambda.watch.router] in Cargo.toml).
# 4. On exit stops watch and the local HTTP server. MariaDB is stopped again only if this
#    script started it (as scripts/test.sh does); a server that was already running is
#    left running, with the kv_lambda_check database in it for inspection.
#
# Any mismatch fails the script (non-zero exit) after printing the response concerned.
# Logs and the events actually sent are kept under target/lambda-check/.
#
# Environment:
#   LAMBDA_ARCH=arm64|x86_64   architecture of the release build (default arm64; falls back
#                              to x86_64, with a warning, if the aarch64 Rust target is not
#                              installed and `rustup target add` cannot fetch it)
#   LAMBDA_CHECK_PORT=9000     port of `cargo lambda watch` (on 127.0.0.1)
#   LAMBDA_CHECK_JWT_SECRET    JWT key of the functions under watch (>= 32 bytes; a fixed
#                              local-development value by default)
#   LAMBDA_CHECK_EXACT_PROFILE=1   build with the release profile of Cargo.toml exactly (one
#                              codegen unit). By default this check builds with 16 codegen
#                              units and no LTO, set in the environment of the build only: it
#                              checks that every function cross-compiles and links, in a
#                              fraction of the time; the deployed binaries (sam build) keep
#                              the profile of Cargo.toml, and bench/run.sh measures those.
#   LAMBDA_CHECK_SKIP_BUILD=1  skip step 1 (quicker iterations on steps 2-4)
#   KV_TEST_MYSQL_PORT         port of the private MariaDB (default 33061, see mariadb.sh)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/target/venv-tools"
WORK="$REPO_ROOT/target/lambda-check"
FIXTURES="$REPO_ROOT/tests/fixtures/events"
PORT="${LAMBDA_CHECK_PORT:-9000}"
DB_NAME="kv_lambda_check"
JWT_SECRET_VALUE="${LAMBDA_CHECK_JWT_SECRET:-lambda-check-local-development-jwt-key-0123456789}"
API_FUNCTIONS=(auth-register auth-token data-store data-retrieve data-update data-delete)

STARTED=$SECONDS
say() { printf '\n==> [%4ss] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
log() { info "$*"; }
# shellcheck source=scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"
fail() {
    printf '\ncheck-lambda.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

for tool in python3 curl jq; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is required (apt-get install $tool)"
done
[[ "$PORT" =~ ^[0-9]+$ ]] || fail "LAMBDA_CHECK_PORT must be a port number, got '$PORT'"
((${#JWT_SECRET_VALUE} >= 32)) || fail "LAMBDA_CHECK_JWT_SECRET must be at least 32 bytes"

rm -rf "$WORK"
mkdir -p "$WORK/events" "$WORK/responses"

# --- cleanup ------------------------------------------------------------------

WATCH_PID=""
RESPONDER_PID=""
STOP_MARIADB=0

cleanup() {
    local rc=$?
    set +e
    if [[ -n "$WATCH_PID" ]]; then
        # watch runs in its own process group (setsid): end it with the functions it started.
        kill -TERM -- "-$WATCH_PID" 2>/dev/null
        for _ in {1..50}; do kill -0 "$WATCH_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$WATCH_PID" 2>/dev/null
        wait "$WATCH_PID" 2>/dev/null
    fi
    if [[ -n "$RESPONDER_PID" ]]; then
        kill -TERM "$RESPONDER_PID" 2>/dev/null
        wait "$RESPONDER_PID" 2>/dev/null
    fi
    if ((STOP_MARIADB)); then
        say "stopping the MariaDB server started by this run"
        ./scripts/mariadb.sh stop
    fi
    if ((rc != 0)) && [[ -s "$WORK/watch.log" ]]; then
        printf '\n--- last lines of %s ---\n' "$WORK/watch.log" >&2
        tail -n 40 "$WORK/watch.log" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. cargo-lambda and the release build ---------------------------------------

say "cargo-lambda $CARGO_LAMBDA_VERSION (private venv $VENV)"
use_cargo_lambda "$REPO_ROOT"
cargo lambda --version >&2

# The functions this workspace has: the six of the API, and db-migrate once it is a member.
FUNCTIONS=("${API_FUNCTIONS[@]}")
HAVE_DB_MIGRATE=0
if [[ -f functions/db-migrate/Cargo.toml ]] && grep -q '"functions/db-migrate"' Cargo.toml; then
    HAVE_DB_MIGRATE=1
    FUNCTIONS+=(db-migrate)
fi
PACKAGE_ARGS=()
for function in "${FUNCTIONS[@]}"; do PACKAGE_ARGS+=(-p "$function"); done

ARCH="${LAMBDA_ARCH:-arm64}"
case "$ARCH" in
arm64 | aarch64)
    ARCH=arm64
    TRIPLE=aarch64-unknown-linux-gnu
    if ! rustup target list --installed 2>/dev/null | grep -qx "$TRIPLE"; then
        say "installing the Rust target $TRIPLE"
        if ! timeout 600 rustup target add "$TRIPLE" >&2; then
            # Without it only x86_64 can be built here. The deployment does not depend on
            # this machine: `sam build` builds arm64 with cargo-lambda on the deployer's.
            printf '\nWARNING: the Rust target %s is not available: building x86_64 instead.\n' "$TRIPLE" >&2
            ARCH=x86_64
        fi
    fi
    ;;
x86_64 | x86-64 | amd64) ARCH=x86_64 ;;
*) fail "LAMBDA_ARCH must be arm64 or x86_64, got '$ARCH'" ;;
esac
if [[ "$ARCH" == arm64 ]]; then
    ARCH_FLAG=--arm64 ELF_MACHINE="ARM aarch64"
else
    ARCH_FLAG=--x86-64 ELF_MACHINE="x86-64"
fi

if [[ "${LAMBDA_CHECK_SKIP_BUILD:-0}" == 1 ]]; then
    say "skipping the release build (LAMBDA_CHECK_SKIP_BUILD=1)"
else
    build_env=()
    if [[ "${LAMBDA_CHECK_EXACT_PROFILE:-0}" != 1 ]]; then
        build_env=(CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16)
    fi
    say "cargo lambda build --release $ARCH_FLAG ${PACKAGE_ARGS[*]} ${build_env[*]}"
    build_started=$SECONDS
    env "${build_env[@]}" cargo lambda build --release "$ARCH_FLAG" "${PACKAGE_ARGS[@]}"
    info "release build took $((SECONDS - build_started)) s"
fi

say "bootstraps ($ARCH)"
for function in "${FUNCTIONS[@]}"; do
    bootstrap="target/lambda/$function/bootstrap"
    if [[ ! -f "$bootstrap" ]]; then
        [[ "${LAMBDA_CHECK_SKIP_BUILD:-0}" == 1 ]] || fail "$bootstrap was not built"
        info "$function: no bootstrap (not built)"
        continue
    fi
    description="$(file -b "$bootstrap" 2>/dev/null || echo '?')"
    if command -v file >/dev/null 2>&1 && [[ "$description" != *"$ELF_MACHINE"* ]]; then
        fail "$bootstrap is not an $ARCH executable: $description"
    fi
    size="$(stat -c %s "$bootstrap")"
    printf '    %-14s %10s bytes  %6s  %s\n' "$function" "$size" "$(numfmt --to=iec "$size")" \
        "${description%%,*}" >&2
done

# --- 2. MariaDB and the schema -------------------------------------------------------

say "starting MariaDB (scripts/mariadb.sh start)"
if ! ./scripts/mariadb.sh status >/dev/null 2>&1; then
    STOP_MARIADB=1
fi
server_url="$(./scripts/mariadb.sh start)"
server_url="${server_url##*$'\n'}"                              # last line
[[ "$server_url" =~ ^mysql://([^:]+):([^@]+)@([^:/]+):([0-9]+)/ ]] || fail "unexpected URL from mariadb.sh: $server_url"
DB_USER="${BASH_REMATCH[1]}" DB_PASSWORD="${BASH_REMATCH[2]}" DB_HOST="${BASH_REMATCH[3]}" DB_PORT="${BASH_REMATCH[4]}"
DATABASE_URL_VALUE="mysql://$DB_USER:$DB_PASSWORD@$DB_HOST:$DB_PORT/$DB_NAME"
info "DATABASE_URL=mysql://$DB_USER:***@$DB_HOST:$DB_PORT/$DB_NAME"

MARIADB_CLIENT="$(command -v mariadb || command -v mysql)" || fail "the mariadb client is not installed"
sql() {
    MYSQL_PWD="$DB_PASSWORD" "$MARIADB_CLIENT" --no-defaults --protocol=TCP -h "$DB_HOST" -P "$DB_PORT" \
        -u "$DB_USER" --batch --skip-column-names "$@"
}
sql -e "DROP DATABASE IF EXISTS \`$DB_NAME\`; CREATE DATABASE \`$DB_NAME\`;"
info "database $DB_NAME dropped and recreated"

# --- 3a. cargo lambda watch -----------------------------------------------------------

# watch builds each function for the host (a debug build, on its first invocation): build
# them beforehand, so that no invocation waits for a compiler.
say "cargo build (host, debug) of the functions for watch"
cargo build "${PACKAGE_ARGS[@]}"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_in_use "$PORT"; then
    fail "port $PORT on 127.0.0.1 is in use: set LAMBDA_CHECK_PORT to a free port"
fi

say "cargo lambda watch on 127.0.0.1:$PORT (log: $WORK/watch.log)"
# --ignore-changes: a source edit elsewhere in the tree must not restart a function mid-check.
# The functions inherit watch's environment. AWS_REGION and AWS_EC2_METADATA_DISABLED keep the
# AWS SDK (db-migrate builds a Secrets Manager client) from looking for an instance-metadata
# service that is not there.
env DATABASE_URL="$DATABASE_URL_VALUE" JWT_SECRET="$JWT_SECRET_VALUE" RUST_LOG=info \
    AWS_REGION=eu-west-1 AWS_EC2_METADATA_DISABLED=true \
    setsid cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$PORT" \
    </dev/null >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
for ((i = 0; ; i++)); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/" || true)"
    [[ "$code" != 000 ]] && break
    kill -0 "$WATCH_PID" 2>/dev/null || fail "cargo lambda watch exited"
    ((i < 600)) || fail "cargo lambda watch did not answer on 127.0.0.1:$PORT within 120 s"
    sleep 0.2
done
info "watch answers (HTTP $code on /)"

# invoke NAME EVENT OUT: sends the event file to function NAME through watch; the Lambda
# response (JSON) goes to OUT.
invoke() {
    local name="$1" event="$2" out="$3"
    if ! cargo lambda invoke "$name" --invoke-address 127.0.0.1 --invoke-port "$PORT" \
        --output-format json --data-file "$event" >"$out" 2>"$out.stderr"; then
        cat "$out" "$out.stderr" >&2
        fail "cargo lambda invoke $name --data-file ${event#"$REPO_ROOT"/} failed"
    fi
}

# --- 3b. the schema, through db-migrate -----------------------------------------------

if ((HAVE_DB_MIGRATE)); then
    say "db-migrate: CloudFormation Create event, response to a local ResponseURL"
    # A stand-in for CloudFormation's pre-signed S3 URL: records each PUT (headers and body).
    python3 - "$WORK/responder" <<'PY' 2>"$WORK/responder.log" &
import http.server, json, os, sys

base = sys.argv[1]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        meta = {"path": self.path, "content_type": self.headers.get("Content-Type")}
        with open(base + ".body.tmp", "wb") as f:
            f.write(body)
        with open(base + ".meta.tmp", "w") as f:
            json.dump(meta, f)
        os.replace(base + ".meta.tmp", base + ".meta.json")
        os.replace(base + ".body.tmp", base + ".body")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(base + ".port.tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(base + ".port.tmp", base + ".port")
server.serve_forever()
PY
    RESPONDER_PID=$!
    for ((i = 0; i < 100; i++)); do
        [[ -s "$WORK/responder.port" ]] && break
        sleep 0.1
    done
    [[ -s "$WORK/responder.port" ]] || fail "the local ResponseURL server did not start: $(cat "$WORK/responder.log")"
    response_url="http://127.0.0.1:$(cat "$WORK/responder.port")/cloudformation-response?X-Amz-Signature=local-check"
    jq -n --arg url "$response_url" '{
        RequestType: "Create",
        ServiceToken: "arn:aws:lambda:eu-west-1:123456789012:function:kv-DbMigrateFunction",
        ResponseURL: $url,
        StackId: "arn:aws:cloudformation:eu-west-1:123456789012:stack/kv-lambda-check/6c1b2e40-0000-4000-8000-000000000001",
        RequestId: "lambda-check-create-1",
        LogicalResourceId: "DatabaseSchema",
        ResourceType: "Custom::DatabaseSchema",
        ResourceProperties: {
            ServiceToken: "arn:aws:lambda:eu-west-1:123456789012:function:kv-DbMigrateFunction"
        }
    }' >"$WORK/events/db-migrate-create.json"
    invoke db-migrate "$WORK/events/db-migrate-create.json" "$WORK/responses/00-db-migrate.json"
    [[ -s "$WORK/responder.body" ]] || fail "db-migrate answered the invocation but PUT nothing to the ResponseURL"
    info "PUT to ResponseURL: $(cat "$WORK/responder.body")"
    if ! jq -e '.Status == "SUCCESS"
            and .RequestId == "lambda-check-create-1"
            and .LogicalResourceId == "DatabaseSchema"
            and (.StackId | startswith("arn:aws:cloudformation:"))
            and (.PhysicalResourceId | type == "string" and length > 0)' \
        "$WORK/responder.body" >/dev/null; then
        fail "db-migrate did not report SUCCESS to the ResponseURL: $(cat "$WORK/responder.body")"
    fi
    # CloudFormation's pre-signed S3 URL accepts only the exact path and query it was signed
    # for, and an empty Content-Type.
    if ! jq -e '.path == "/cloudformation-response?X-Amz-Signature=local-check"
            and ((.content_type // "") == "")' "$WORK/responder.meta.json" >/dev/null; then
        fail "db-migrate's PUT does not fit a pre-signed URL: $(cat "$WORK/responder.meta.json")"
    fi
    info "db-migrate reported SUCCESS (PhysicalResourceId $(jq -r .PhysicalResourceId "$WORK/responder.body"))"
    kill -TERM "$RESPONDER_PID" 2>/dev/null || true
    wait "$RESPONDER_PID" 2>/dev/null || true
    RESPONDER_PID=""
else
    # TODO: remove this branch once functions/db-migrate is a workspace member (it then
    # always is): the schema should come from db-migrate, as in a deployment.
    say "db-migrate is not in the workspace: applying migrations/mysql/*.sql with the mariadb client"
    for migration in migrations/mysql/*.sql; do
        info "$migration"
        sql "$DB_NAME" <"$migration"
    done
fi
tables="$(sql "$DB_NAME" -e "SELECT GROUP_CONCAT(table_name ORDER BY table_name) FROM information_schema.tables WHERE table_schema = '$DB_NAME'")"
info "tables in $DB_NAME: $tables"
[[ ",$tables," == *,users,* && ",$tables," == *,entries,* ]] || fail "the schema is missing tables: $tables"

# --- 3c. the API, in the contract's order ------------------------------------------------

# check LABEL OUT STATUS EXPECTED [JQ]: the Lambda response in OUT has statusCode STATUS, a
# JSON Content-Type, and a body that, after the jq filter JQ (default: `.`), equals the JSON
# EXPECTED exactly.
check() {
    local label="$1" out="$2" status="$3" expected="$4" filter="${5:-.}" body actual
    if ! jq -e --argjson status "$status" '.statusCode == $status' "$out" >/dev/null 2>&1; then
        printf '%s: the response:\n' "$label" >&2
        cat "$out" >&2
        fail "$label: expected statusCode $status"
    fi
    if ! jq -e '[(.headers // {}), (.multiValueHeaders // {} | map_values(.[0]))] | add
                | to_entries | map(select(.key | ascii_downcase == "content-type")) | .[0].value
                | startswith("application/json")' "$out" >/dev/null 2>&1; then
        cat "$out" >&2
        fail "$label: the response has no JSON Content-Type"
    fi
    body="$(jq -r 'if .isBase64Encoded then (.body | @base64d) else .body end' "$out")"
    if ! actual="$(jq -cS "$filter" <<<"$body" 2>/dev/null)" ||
        [[ "$actual" != "$(jq -cS . <<<"$expected")" ]]; then
        printf '%s: body    %s\n%s: expected %s (after jq %s)\n' "$label" "$body" "$label" \
            "$(jq -cS . <<<"$expected")" "$filter" >&2
        fail "$label: the body does not match the contract"
    fi
    # (tokens are shown shortened)
    info "$label: $status $(jq -c 'if .data.access_token? then .data.access_token |= .[0:12] + "..." else . end' <<<"$body")"
}

# A copy of a fixture with the bearer token in place of __TOKEN__.
with_token() {
    local source="$1" target="$2"
    jq --arg token "$TOKEN" 'walk(if type == "string" then gsub("__TOKEN__"; $token) else . end)' \
        "$source" >"$target"
}

say "invoking the functions with the API Gateway fixtures (tests/fixtures/events)"
R="$WORK/responses"

invoke auth-register "$FIXTURES/http-api-v2/register.json" "$R/01-register.json"
check "auth-register" "$R/01-register.json" 200 '{"status":"success","message":"User successfully registered!",
    "data":{"username":"lambda_user","email":"lambda@example.com","full_name":"Lambda User","age":30,"gender":"female"}}' \
    'if (.data.user_id | type == "string" and test("^[0-9]+$")) then del(.data.user_id) else . end'
USER_ID="$(jq -r '.body | fromjson | .data.user_id' "$R/01-register.json")"

invoke auth-token "$FIXTURES/http-api-v2/token.json" "$R/02-token.json"
check "auth-token" "$R/02-token.json" 200 '{"status":"success","message":"Access token generated successfully.",
    "data":{"token_type":"Bearer","expires_in":3600}}' \
    'if (.data.access_token | type == "string" and test("^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$")) then del(.data.access_token) else . end'
TOKEN="$(jq -r '.body | fromjson | .data.access_token' "$R/02-token.json")"
# The token's subject is the registered user.
sub="$(cut -d. -f2 <<<"$TOKEN" | tr '_-' '/+' | awk '{ n = length($0) % 4; if (n) $0 = $0 substr("===", 1, 4 - n); print }' |
    base64 -d 2>/dev/null | jq -r .sub)"
[[ "$sub" == "$USER_ID" ]] || fail "the access token's sub is '$sub', not the registered user id '$USER_ID'"

E="$WORK/events"
for fixture in store retrieve update delete; do
    with_token "$FIXTURES/http-api-v2/$fixture.json" "$E/http-api-v2-$fixture.json"
done
with_token "$FIXTURES/rest-api-v1/retrieve.json" "$E/rest-api-v1-retrieve.json"

invoke data-store "$E/http-api-v2-store.json" "$R/03-store.json"
check "data-store" "$R/03-store.json" 200 '{"status":"success","message":"Data stored successfully."}'

row="$(sql "$DB_NAME" -e "SELECT u.id, u.username, e.value FROM entries e JOIN users u ON u.id = e.user_id
    WHERE e.entry_key = CAST('a/b c' AS BINARY)")"
info "MariaDB $DB_NAME.entries for key 'a/b c': $(tr '\t' ' ' <<<"$row")"
[[ "$row" == "$USER_ID"$'\t'"lambda_user"$'\t'"hello" ]] ||
    fail "expected one row (user $USER_ID, lambda_user, hello) for the key 'a/b c', got: $row"

invoke data-retrieve "$E/http-api-v2-retrieve.json" "$R/04-retrieve.json"
check "data-retrieve" "$R/04-retrieve.json" 200 '{"status":"success","data":{"keyN":"a/b c","valueN":"hello"}}'

invoke data-update "$E/http-api-v2-update.json" "$R/05-update.json"
check "data-update" "$R/05-update.json" 200 '{"status":"success","message":"Data updated successfully."}'

invoke data-retrieve "$E/http-api-v2-retrieve.json" "$R/06-retrieve-after-update.json"
check "data-retrieve (after update)" "$R/06-retrieve-after-update.json" 200 \
    '{"status":"success","data":{"keyN":"a/b c","valueN":"world"}}'

# REST API (payload 1.0): the path keeps the stage (`/prod/...`) and the key's encoding.
invoke data-retrieve "$E/rest-api-v1-retrieve.json" "$R/07-retrieve-rest-v1.json"
check "data-retrieve (REST v1, stage prod)" "$R/07-retrieve-rest-v1.json" 200 \
    '{"status":"success","data":{"keyN":"a/b c","valueN":"world"}}'

# --- 3d. real HTTP requests through watch ---------------------------------------------------

# With [workspace.metadata.lambda.watch.router] in Cargo.toml, watch serves the API's own
# paths; without it, each function answers under /lambda-url/<function>/ (plus its path).
if grep -q '^\[workspace\.metadata\.lambda\.watch\.router\]' Cargo.toml; then
    url_of() { echo "http://127.0.0.1:$PORT$2"; }
else
    url_of() { echo "http://127.0.0.1:$PORT/lambda-url/$1$2"; }
fi
# curl_check LABEL EXPECTED_STATUS EXPECTED_BODY JQ CURL_ARGS...
curl_check() {
    local label="$1" status="$2" expected="$3" filter="$4" out code
    out="$R/curl-$label.json"
    shift 4
    code="$(curl -sS --max-time 60 -o "$out" -w '%{http_code}' "$@")" || fail "$label: curl $* failed"
    jq -n --argjson code "$code" --rawfile body "$out" \
        '{statusCode: $code, headers: {"content-type": "application/json"}, body: $body}' >"$out.lambda"
    [[ "$code" == "$status" ]] || { cat "$out" >&2; fail "$label: HTTP $code, expected $status"; }
    check "curl $label" "$out.lambda" "$status" "$expected" "$filter"
}
say "curl through watch's HTTP endpoint"
info "POST $(url_of auth-token /auth/token)"
curl_check token 200 '{"status":"success","message":"Access token generated successfully.",
    "data":{"token_type":"Bearer","expires_in":3600}}' 'del(.data.access_token)' \
    -X POST "$(url_of auth-token /auth/token)" -H 'Content-Type: application/json' \
    -d '{"username":"lambda_user","password":"Str0ng!Passw0rd"}'
info "GET $(url_of data-retrieve '/data/retrieve/a%2Fb%20c')"
curl_check retrieve 200 '{"status":"success","data":{"keyN":"a/b c","valueN":"world"}}' . \
    "$(url_of data-retrieve '/data/retrieve/a%2Fb%20c')" -H "Authorization: Bearer $TOKEN"

# --- 3e. delete ---------------------------------------------------------------------------

say "delete"
invoke data-delete "$E/http-api-v2-delete.json" "$R/08-delete.json"
check "data-delete" "$R/08-delete.json" 200 '{"status":"success","message":"Data deleted successfully."}'

invoke data-retrieve "$E/http-api-v2-retrieve.json" "$R/09-retrieve-after-delete.json"
check "data-retrieve (after delete)" "$R/09-retrieve-after-delete.json" 404 \
    '{"status":"error","code":"KEY_NOT_FOUND","message":"The provided key does not exist in the database."}'

left="$(sql "$DB_NAME" -e "SELECT COUNT(*) FROM entries")"
[[ "$left" == 0 ]] || fail "expected no rows in $DB_NAME.entries after the delete, found $left"
info "MariaDB $DB_NAME.entries is empty again"

say "all Lambda checks passed ($ARCH bootstraps; $((SECONDS - STARTED)) s in all)"
