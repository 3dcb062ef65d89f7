#!/usr/bin/env bash
# Contract fuzzing: schemathesis (from PyPI, in a private venv) generates requests from the
# OpenAPI document the running adapter serves at /openapi.json, and checks that no answer is
# a 5xx and that every answer matches the document (status, content type, headers, body).
#
#   ./scripts/fuzz.sh [EXTRA SCHEMATHESIS ARGS...]
#
# Runs the debug adapter against MySQL when KV_TEST_MYSQL_URL is set (as scripts/test.sh
# sets it), else against a fresh SQLite file. Bounded by --max-examples per operation
# (FUZZ_MAX_EXAMPLES, default 200); the whole run is stopped after 10 minutes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
SCHEMATHESIS_VERSION=4.32.5
venv=$root/target/venv-fuzz
work=$root/target/fuzz

if [[ ! -x $venv/bin/schemathesis ]] || ! "$venv/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet -p kv-server
rm -rf "$work" && mkdir -p "$work"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

if [[ -n ${KV_TEST_MYSQL_URL:-} ]]; then
    database=kv_fuzz
    mariadb_args=(--protocol=tcp -h 127.0.0.1 -P "${KV_TEST_MYSQL_PORT:-33061}" -u kv -pkv-test-password)
    mariadb "${mariadb_args[@]}" -e "DROP DATABASE IF EXISTS $database; CREATE DATABASE $database"
    database_url="${KV_TEST_MYSQL_URL%/}/$database"
else
    database_url="sqlite://$work/kv.db"
fi
echo "fuzzing the adapter on ${database_url%%:*} at $base" >&2

DATABASE_URL=$database_url PORT=$port JWT_SECRET=fuzz-run-jwt-secret-of-at-least-32-bytes \
    RUST_LOG=warn "$root/target/debug/kv-server" >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -fs "$base/health" >/dev/null && break
    sleep 0.1
done
curl -fs "$base/health" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

# A user whose token opens /data/*, so the fuzzer gets past authentication.
curl -fs "$base/auth/register" -H 'content-type: application/json' -d '{"username": "fuzzer",
    "email": "fuzzer@example.com", "password": "Str0ng!Passw0rd", "full_name": "Fuzz",
    "gender": "other"}' >/dev/null
token=$(curl -fs "$base/auth/token" -H 'content-type: application/json' \
    -d '{"username": "fuzzer", "password": "Str0ng!Passw0rd"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["access_token"])')

status=0
timeout 600 "$venv/bin/schemathesis" run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --header "Authorization: Bearer $token" \
    --phases examples,coverage,fuzzing \
    --max-examples "${FUZZ_MAX_EXAMPLES:-200}" \
    --workers 2 --no-color --generation-database none \
    "$@" || status=$?

if grep -qi "panicked" "$work/server.log"; then
    echo "fuzz.sh: the server panicked:" >&2
    grep -i -A5 "panicked" "$work/server.log" >&2
    status=1
fi
exit "$status"
