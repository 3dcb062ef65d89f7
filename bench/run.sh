#!/usr/bin/env bash
# Performance harness of issue 4 (bench/README.md): the adapter on MariaDB under wrk, the raw
# MariaDB rates of the same run (mariadb-slap: the point select that is the retrieve target's
# reference, and the statement a retrieve sends, with its session check), statements per request, the
# adapter's memory, the Lambda bootstraps' sizes and cold starts under bench/lambda-emulator.py;
# on request, stores during the sweep of a million expired entries (issue 11), and a fleet of 64
# function processes against a MariaDB with fewer connections than instances (issue 13).
#
#   bench/run.sh                           from any directory; ~2 minutes once the release binaries are built
#   BENCH_ONLY="store sweep" bench/run.sh  the sweep phase (not in the default list: it takes minutes)
#   BENCH_ONLY=fleet bench/run.sh          the fleet phase (not in the default list: ~2 minutes of its own)
#
# Environment: BENCH_DURATION=10s, BENCH_CONNECTIONS=16 (also the adapter's pool and the raw
# clients), BENCH_THREADS=2, BENCH_MEMORY_CONNECTIONS=64, BENCH_COLD_STARTS=10, BENCH_KEEP_DB=1
# (keep kv_bench), BENCH_BUILD=0 (measure the binaries already built), BENCH_ONLY="retrieve raw"
# (a subset of: retrieve store update delete list refresh token register raw memory lambda, all of them
# by default, and sweep and fleet); for sweep: BENCH_SWEEP_ENTRIES=1000000, BENCH_SWEEP_USERS=1000 (new
# users beside the bench users), BENCH_SWEEP_LAYOUT=spread (or clustered: see prepare.py), BENCH_SWEEP_SLICE=10s (one wrk run), BENCH_SWEEP_MAX=900 (seconds
# of stores at most, whether or not the sweep has finished); for fleet (bench/fleet.py):
# BENCH_FLEET="data-retrieve=48 data-store=16" (instances per function), BENCH_FLEET_BELOW=32 and
# BENCH_FLEET_ABOVE=200 (max_connections of its two runs, restored afterwards), BENCH_FLEET_LOAD=20
# and BENCH_FLEET_LOW=10 (seconds of load, then of low load), BENCH_FLEET_CALLERS (under load;
# twice the instances by default), BENCH_FLEET_LOW_CALLERS=8, BENCH_FLEET_DISPATCH=lru (or mru).
#
# Exits non-zero only when the harness fails (a build, a tool, a missing measurement); a missed
# target prints MISSED and exits 0.
set -euo pipefail
{ # read whole before it runs: editing this file during a run cannot change that run
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
die() {
    printf 'bench/run.sh: HARNESS FAILURE: %s\n' "$*" >&2
    exit 1
}
log() { printf '\n== %s  [%s; load %s]\n' "$*" "$(date +%T)" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }
BENCH="$REPO_ROOT/bench" WORK="$REPO_ROOT/target/bench"
RESULTS="$WORK/results.jsonl" DATA="$WORK/data.lua" DB=kv_bench
DURATION="${BENCH_DURATION:-10s}" CONNECTIONS="${BENCH_CONNECTIONS:-16}" THREADS="${BENCH_THREADS:-2}"
[[ "$DURATION" =~ ^([0-9]+)s?$ ]] || die "BENCH_DURATION must be seconds, like 10s"
SECONDS_="${BASH_REMATCH[1]}"
PHASES=" ${BENCH_ONLY:-retrieve store update delete list refresh token register raw memory lambda} "
wanted() { [[ "$PHASES" == *" $1 "* ]]; }
record() { echo "BENCH_JSON $*" >>"$RESULTS"; }
JWT_SECRET="bench-jwt-secret-0123456789abcdef0123456789"
export BENCH_DATA="$DATA"

ADAPTER_PID="" PROBE_PID="" POLLER_PID="" FLEET_RESTORE=""
stop() { if [[ -n "$1" ]] && kill -TERM "$1" 2>/dev/null; then wait "$1" 2>/dev/null || true; fi; }
# shellcheck disable=SC2317 # the EXIT trap calls it
cleanup() {
    local status=$?
    stop "$ADAPTER_PID"
    stop "$PROBE_PID"
    stop "$POLLER_PID"
    # bench/fleet.py restores max_connections and drops its user itself; this is in case it was killed.
    [[ -z "${FLEET_RESTORE:-}" ]] || $MYSQL -e "$FLEET_RESTORE" || true
    [[ -z "${MYSQL:-}" || "${BENCH_KEEP_DB:-0}" == 1 ]] || $MYSQL -e "DROP DATABASE IF EXISTS $DB" || true
    stop_services # MariaDB, if this run started it
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One run at a time: two would share kv_bench and target/bench/, and halve each other's figures.
mkdir -p "$WORK"
exec 8>"$REPO_ROOT/target/bench.lock" # closed (8>&-) for every long-lived child
flock -n 8 || { log "another bench/run.sh holds target/bench.lock: waiting (30 min at most)"; flock -w 1800 8; } ||
    die "another bench/run.sh still runs after 30 minutes"
: >"$RESULTS"

log "machine"
uname -a
echo "nproc: $(nproc); $(lscpu | grep 'Model name' | tr -s ' ')"
free -m | awk '/^Mem:/ {print "memory: " $2 " MiB total, " $7 " MiB available"}'
uptime
top -bn1 | sed -n 7,14p
echo "git: $(git -C "$REPO_ROOT" rev-parse --short HEAD) on $(git -C "$REPO_ROOT" rev-parse --abbrev-ref HEAD);" \
    "uncommitted changes outside bench/: $(git -C "$REPO_ROOT" status --porcelain -- . ':!bench' | wc -l) paths"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v mariadb-slap >/dev/null || missing+=(mariadb-client)
((${#missing[@]} == 0)) || apt_install "${missing[@]}"
echo "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(mariadb-slap --version)"

# --- build: the adapter as its container image builds it (the server profile), the release
# functions (x86_64, for the cold starts and the fleet), and the bootstraps as `sam build`
# deploys them (cargo-lambda adds panic=abort, target-cpu=neoverse-n1)
cd "$REPO_ROOT"
mapfile -t FUNCTIONS < <(lambda_functions)
((${#FUNCTIONS[@]})) || die "cargo metadata shows no bin target under functions/"
if [[ "${BENCH_BUILD:-1}" != 0 ]]; then
    log "cargo build --profile server --bin kv-server; cargo build --release --workspace --bins; cargo lambda build --release --arm64"
    timeout 1800 cargo build --profile server --quiet --bin kv-server || die "cargo build failed"
    timeout 1800 cargo build --release --quiet --workspace --bins || die "cargo build failed"
    if wanted lambda; then
        py_tools ci cargo-lambda
        rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
            timeout 600 rustup target add aarch64-unknown-linux-gnu || die "no Rust target aarch64-unknown-linux-gnu"
        bins=()
        for f in "${FUNCTIONS[@]}"; do bins+=(--bin "$f"); done
        timeout 2400 cargo lambda build --release --arm64 "${bins[@]}" >&2 || die "cargo lambda build failed"
    fi
fi
ADAPTER="$REPO_ROOT/target/server/kv-server"
[[ -x "$ADAPTER" ]] || die "$ADAPTER was not built"
echo "adapter: $ADAPTER ($(stat -c %s "$ADAPTER") bytes, built $(date -r "$ADAPTER" '+%F %T'))"

log "MariaDB (scripts/mariadb.sh)"
start_service mariadb BENCH_MARIADB_URL 8>&- || die "scripts/mariadb.sh start failed"
url="$BENCH_MARIADB_URL"
[[ "$url" =~ ^mysql://([^:]+):([^@]+)@([^:]+):([0-9]+)$ ]] || die "unexpected URL from mariadb.sh: $url"
DB_USER="${BASH_REMATCH[1]}" DB_PASSWORD="${BASH_REMATCH[2]}" DB_HOST="${BASH_REMATCH[3]}" DB_PORT="${BASH_REMATCH[4]}"
MARIADB_PID="$(tr -dc '0-9' <"${KV_MARIADB_DIR:-$REPO_ROOT/target/mariadb}/mariadbd.pid")"
MYSQL="mariadb --no-defaults -h$DB_HOST -P$DB_PORT -u$DB_USER -p$DB_PASSWORD --batch --skip-column-names"
echo "MariaDB $($MYSQL -e 'SELECT VERSION()') on $DB_HOST:$DB_PORT;" \
    "innodb_flush_log_at_trx_commit=$($MYSQL -e 'SELECT @@innodb_flush_log_at_trx_commit')," \
    "innodb_buffer_pool_size=$(($($MYSQL -e 'SELECT @@innodb_buffer_pool_size') / 1048576)) MiB"
$MYSQL -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB" || die "could not create $DB"
DATABASE_URL="$url/$DB"
counter() { $MYSQL -e "SHOW GLOBAL STATUS LIKE '$1'" | awk '{print $2}'; }
status_json() { # NAME...: those global status counters of MariaDB as one JSON object (absent ones left out)
    $MYSQL -e "SHOW GLOBAL STATUS WHERE Variable_name IN ($(printf "'%s'," "$@" | sed 's/,$//'))" |
        jq -Rnc '[inputs | split("\t") | {(.[0]): (.[1] | tonumber)}] | add // {}'
}
# Prepared statements over the whole run, from before the adapter's migrations to the summary:
# the target is none, every statement going over the text protocol (issue 13). RUN_STATUS1 tells
# what the adapter's start (its migrations) sent apart from the rest.
RUN_STATEMENTS=(Com_stmt_prepare Com_stmt_execute Com_stmt_close Questions)
RUN_STATUS0="$(status_json "${RUN_STATEMENTS[@]}")"

# The disk's own latency: a synced 4 KiB write every 50 ms on target/'s filesystem, MariaDB's.
python3 "$BENCH/disk-probe.py" "$WORK/disk-probe.dat" "$WORK/disk-probe.log" 8>&- &
PROBE_PID=$!
record "{\"kind\":\"disk_probe\",\"log\":\"$WORK/disk-probe.log\"}"

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
start_adapter() { # LOG [NAME=VALUE...]: the adapter on $BASE, as ADAPTER_PID, once /health answers
    local out="$1"
    # The bench users hold ~14,500 entries each (more during the sweep phase), past the default
    # quota of 10,000 keys: the limits are raised out of reach. The accounting itself (a
    # conditional UPDATE of the user's counters in every write's transaction) still runs on
    # every write, and is part of what store, update and delete measure.
    env DATABASE_URL="$DATABASE_URL" DATABASE_MAX_CONNECTIONS="$CONNECTIONS" JWT_SECRET="$JWT_SECRET" \
        HOST=127.0.0.1 PORT="$PORT" QUOTA_MAX_KEYS=10000000 QUOTA_MAX_BYTES=10000000000 RUST_LOG=warn \
        "${@:2}" "$ADAPTER" >"$out" 2>&1 8>&- &
    ADAPTER_PID=$!
    for ((i = 0; i < 300; i++)); do
        curl -fs "$BASE/health" >/dev/null && return 0
        alive "$ADAPTER_PID" || { tail -20 "$out" >&2; die "the adapter exited"; }
        sleep 0.1
    done
    die "the adapter did not answer /health within 30 s"
}
log "the adapter on $BASE (pool of $CONNECTIONS)"
start_adapter "$WORK/adapter.log"
RUN_STATUS1="$(status_json "${RUN_STATEMENTS[@]}")" # after the adapter's migrations
rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
wrk -t1 -c"$CONNECTIONS" -d2s "$BASE/health" >/dev/null # fills the pool
sleep 2
IDLE_RSS="$(rss_kb "$ADAPTER_PID" VmRSS)"
echo "adapter idle after warm-up: VmRSS $IDLE_RSS kB"

log "users, tokens and keys (bench/prepare.py)"
RUN_ID="$(date +%s | tail -c 7)$$"
python3 "$BENCH/prepare.py" "$BASE" "$DATA" --run "$RUN_ID" --users 16 --keys 1000 \
    --delete-keys 100000 --list-keys 10000 --threads "$THREADS" --mysql "$MYSQL $DB" || die "prepare failed"
record "{\"kind\":\"config\",\"wrk\":\"-t$THREADS -c$CONNECTIONS -d$DURATION --latency\",\"phases\":\"$PHASES\"}"

# CPU ticks of the adapter and mariadbd, the machine's busy, all and iowait ticks, and the time.
ticks() {
    echo "$(awk '{print $14 + $15}' "/proc/$ADAPTER_PID/stat") $(awk '{print $14 + $15}' "/proc/$MARIADB_PID/stat")" \
        "$(awk '/^cpu / {busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6, $6}' /proc/stat) $(date +%s.%N)"
}
record_cpu() { # PHASE REQUESTS TICKS_BEFORE TICKS_AFTER
    record "$(awk -v p="$1" -v n="$2" -v a="$3" -v b="$4" -v hz="$(getconf CLK_TCK)" 'BEGIN { split(a, x); split(b, y)
        printf "{\"kind\":\"cpu\",\"phase\":\"%s\",\"requests\":%d,\"adapter_s\":%g,\"mariadb_s\":%g,\"busy_s\":%g,", p, n, (y[1] - x[1]) / hz, (y[2] - x[2]) / hz, (y[3] - x[3]) / hz
        printf "\"all_s\":%g,\"iowait_s\":%g,\"start\":%s,\"end\":%s}", (y[4] - x[4]) / hz, (y[5] - x[5]) / hz, x[6], y[6] }')"
}
# Per request: statements (text: Com_select and the like; prepared: Com_stmt_execute), pings, and
# the transactions the writes open and end. Also the row lock waits (server-wide): stores of one
# user take turns on the user's row.
SERVER_COUNTERS=(Com_select Com_insert Com_update Com_delete Com_stmt_execute Com_stmt_prepare Com_admin_commands
    Com_begin Com_commit Com_rollback Innodb_row_lock_waits Innodb_row_lock_time)

run_wrk() { # ENDPOINT CONNECTIONS [WRK OPTIONS]: sets WRK_JSON (the result) and REQUESTS.
    # WRK_DURATION (default $DURATION) and WRK_TAG (in the output's name and in stored keys) may be set.
    local duration="${WRK_DURATION:-$DURATION}" out="$WORK/wrk-$1-c$2${WRK_TAG:-}.txt"
    log "wrk $1: -t$THREADS -c$2 -d$duration ${*:3}"
    BENCH_ENDPOINT="$1" BENCH_KEY_TAG="${WRK_TAG:-}" BENCH_THREADS="$THREADS" timeout $((${duration%s} + 60)) wrk -t"$THREADS" -c"$2" \
        -d"$duration" --latency "${@:3}" -s "$BENCH/wrk.lua" "$BASE" >"$out" 2>&1 || { cat "$out" >&2; die "wrk $1 failed"; }
    WRK_JSON="$(grep '^BENCH_JSON ' "$out" | sed 's/^BENCH_JSON //')" || { cat "$out" >&2; die "wrk $1 printed no result"; }
    echo "  $WRK_JSON"
    REQUESTS="$(jq .requests <<<"$WRK_JSON")"
}

# MariaDB alone, by its own load tool: text queries, one round trip each, random bench users and
# r* keys (retrieve.lua's), over as many connections as wrk's. Two statements: the point select
# of the entry (the target's reference, since issue 4) and the statement a retrieve sends since
# issue 12 (get_entry in shared/src/store/entries.rs: the user's session left-joined with the
# entry, as MariaDB's general log shows it), whose difference is the session check's cost in
# MariaDB. Right before and right after retrieve, point nearest to it, as the machine's speed
# drifts within minutes.
SLAP_QUERIES=""
slap_queries() { # writes this run's point and joined query files, once
    local ids sessions
    [[ -z "$SLAP_QUERIES" ]] || return 0
    ids="$($MYSQL "$DB" -e "SELECT GROUP_CONCAT(id) FROM users WHERE username LIKE 'u${RUN_ID}\\_%'")"
    # The session of each user's retrieve token: prepare.py logs every user in once before the
    # logins whose sessions refresh uses.
    sessions="$($MYSQL "$DB" -e "SELECT GROUP_CONCAT(CONCAT(user_id, ':', id)) FROM (SELECT user_id, MIN(id) AS id
        FROM sessions WHERE user_id IN ($ids) GROUP BY user_id) first")"
    awk -v sessions="$sessions" -v point="$WORK/slap-point.sql" -v joined="$WORK/slap-joined.sql" 'BEGIN {
        srand(); n = split(sessions, pairs, ",")
        for (i = 1; i <= n; i++) { split(pairs[i], p, ":"); user[i] = p[1]; session[i] = p[2] }
        for (i = 0; i < 20000; i++) {
            u = int(rand() * n) + 1; k = int(rand() * 1000); hex = "72" # the key r<k> in hexadecimal:
            for (j = 1; j <= length(k); j++) hex = hex "3" substr(k, j, 1) # "r" is 72, a digit d 3d
            printf "SELECT value FROM entries WHERE user_id = %d AND entry_key = '\''r%d'\'';\n", user[u], k >point
            printf "SELECT entries.value, entries.etag, entries.expires_at FROM sessions LEFT JOIN entries ON " \
                "entries.user_id = %d AND entries.entry_key = X'\''%s'\'' WHERE sessions.id = %d AND " \
                "sessions.user_id = %d AND sessions.ended_at IS NULL;\n", user[u], hex, session[u], user[u] >joined
        } }'
    # Both must find the entry: the joined one only while the session lives.
    [[ "$(head -1 "$WORK/slap-joined.sql" | $MYSQL "$DB" | cut -f1)" == "$(head -1 "$WORK/slap-point.sql" | $MYSQL "$DB")" &&
        -n "$(head -1 "$WORK/slap-point.sql" | $MYSQL "$DB")" ]] || die "the raw queries do not find the bench entries"
    SLAP_QUERIES=written
}
raw_reference() { # point|joined before|after|alone
    local out="$WORK/slap-$1-$2.txt" queries=$((SECONDS_ * 30000)) t0 selects0 seconds
    slap_queries
    log "raw MariaDB, $1 select ($2): mariadb-slap, $CONNECTIONS clients, $queries queries"
    selects0="$(counter Com_select)" t0="$(ticks)"
    timeout $((SECONDS_ * 10 + 60)) mariadb-slap --no-defaults --host="$DB_HOST" --port="$DB_PORT" \
        --user="$DB_USER" --password="$DB_PASSWORD" --create-schema="$DB" --no-drop --concurrency="$CONNECTIONS" \
        --iterations=1 --number-of-queries="$queries" --query="$WORK/slap-$1.sql" --delimiter=';' >"$out" 2>&1 ||
        { cat "$out" >&2; die "mariadb-slap failed"; }
    record_cpu "slap-$1-$2" "$queries" "$t0" "$(ticks)"
    # mariadb-slap exits 0 even when its queries fail: the server's count tells whether they ran.
    if grep -qi error "$out" || (($(counter Com_select) - selects0 < queries)); then
        cat "$out" >&2
        die "mariadb-slap's queries did not all run"
    fi
    seconds="$(awk '/Average number of seconds to run all queries:/ {print $(NF - 1)}' "$out")"
    [[ "$seconds" =~ ^[0-9.]+$ ]] || { cat "$out" >&2; die "could not read mariadb-slap's time"; }
    echo "  mariadb-slap: $queries queries in $seconds s"
    record "{\"kind\":\"raw\",\"statement\":\"$1\",\"when\":\"$2\",\"threads\":$CONNECTIONS,\"queries\":$queries,\"qps\":$(awk -v n="$queries" -v s="$seconds" 'BEGIN {printf "%.1f", n / s}')}"
    sleep 1
}

# Whether each user's quota counters equal the aggregates of their entries, and each entry's
# value_size its value's length: after the write phases, and after the sweep.
check_counters() { # WHEN
    local out users wrong entries sizes
    out="$($MYSQL "$DB" -e "SELECT COUNT(*), COALESCE(SUM(u.entry_count <> COALESCE(h.n, 0)
            OR u.entry_bytes <> COALESCE(h.bytes, 0)), 0), COALESCE(SUM(h.n), 0)
        FROM users u LEFT JOIN (SELECT user_id, COUNT(*) AS n, SUM(LENGTH(entry_key) + value_size) AS bytes
                                FROM entries GROUP BY user_id) h ON h.user_id = u.id;
        SELECT COUNT(*) FROM entries WHERE value_size <> LENGTH(value)")" || die "the counters check failed"
    read -r users wrong entries sizes <<<"$(tr "\n" " " <<<"$out")"
    local examples
    examples="$($MYSQL "$DB" -e "SELECT u.id, u.entry_count, COALESCE(h.n, 0), u.entry_bytes, COALESCE(h.bytes, 0)
        FROM users u LEFT JOIN (SELECT user_id, COUNT(*) AS n, SUM(LENGTH(entry_key) + value_size) AS bytes
                                FROM entries GROUP BY user_id) h ON h.user_id = u.id
        WHERE u.entry_count <> COALESCE(h.n, 0) OR u.entry_bytes <> COALESCE(h.bytes, 0) LIMIT 5" |
        awk '{printf "%suser %s: count %s (entries %s), bytes %s (entries %s)", (NR > 1 ? "; " : ""), $1, $2, $3, $4, $5}')"
    record "$(jq -nc --arg when "$1" --argjson users "$users" --argjson wrong "$wrong" --argjson entries "$entries" \
        --argjson sizes "$sizes" --arg examples "$examples" '{kind: "counters", when: $when, users: $users,
        mismatched_users: $wrong, entries: $entries, wrong_value_sizes: $sizes, examples: $examples}')"
    tail -n 1 "$RESULTS" | sed 's/^BENCH_JSON /  /'
}

for endpoint in retrieve store update delete list refresh token register; do
    wanted "$endpoint" || continue
    if [[ "$endpoint" == retrieve ]] && wanted raw; then raw_reference joined before && raw_reference point before; fi
    commands0="$(status_json "${SERVER_COUNTERS[@]}")" t0="$(ticks)"
    # Argon2 answers take ~130 ms: wrk's default 2 s timeout would count a queue as errors.
    if [[ "$endpoint" == token || "$endpoint" == register ]]; then extra=(--timeout 10s); else extra=(); fi
    run_wrk "$endpoint" "$CONNECTIONS" "${extra[@]}"
    record "$WRK_JSON"
    record_cpu "$endpoint" "$REQUESTS" "$t0" "$(ticks)"
    record "$(jq -nc --arg e "$endpoint" --argjson n "$REQUESTS" --argjson a "$commands0" \
        --argjson b "$(status_json "${SERVER_COUNTERS[@]}")" '{kind: "server_commands", endpoint: $e, requests: $n,
        stmt_execute: ($b.Com_stmt_execute - $a.Com_stmt_execute), admin_commands: ($b.Com_admin_commands - $a.Com_admin_commands),
        counters: ($b | with_entries(.value -= ($a[.key] // 0)))}')"
    sleep 1
    if [[ "$endpoint" == retrieve ]] && wanted raw; then raw_reference point after && raw_reference joined after; fi
done
if wanted raw && ! wanted retrieve; then raw_reference point alone && raw_reference joined alone; fi
if wanted store || wanted update || wanted delete || wanted sweep; then check_counters "after the write phases"; fi

if wanted memory; then
    connections="${BENCH_MEMORY_CONNECTIONS:-64}"
    log "memory: $connections connections on /auth/token for $DURATION"
    run_hwm="$(rss_kb "$ADAPTER_PID" VmHWM)"
    echo 5 >"/proc/$ADAPTER_PID/clear_refs" || die "could not reset VmHWM"
    (   # the highest VmRSS sampled every 100 ms
        max=0
        for ((i = 0; i < (SECONDS_ + 5) * 10; i++)); do
            rss="$(rss_kb "$ADAPTER_PID" VmRSS)" && ((rss > max)) && max=$rss
            sleep 0.1
        done
        echo "$max" >"$WORK/peak-rss.txt"
    ) &
    sampler=$!
    run_wrk token "$connections" --timeout 10s
    wait "$sampler"
    peak_hwm="$(rss_kb "$ADAPTER_PID" VmHWM)"
    sleep 3
    record "$(jq -c --argjson idle "$IDLE_RSS" --argjson hwm "$peak_hwm" --argjson sampled "$(cat "$WORK/peak-rss.txt")" \
        --argjson after "$(rss_kb "$ADAPTER_PID" VmRSS)" --argjson run "$run_hwm" --argjson s "$SECONDS_" \
        --argjson threads "$(rss_kb "$ADAPTER_PID" Threads)" '{kind: "memory", idle_rss_kb: $idle,
        peak_hwm_kb: $hwm, peak_sampled_kb: $sampled, idle_after_load_kb: $after, run_hwm_kb: $run,
        seconds: $s, rps, non2xx, os_threads: $threads}' <<<"$WRK_JSON")"
    tail -n 1 "$RESULTS" | sed 's/^BENCH_JSON /  /'
fi
stop "$ADAPTER_PID"
ADAPTER_PID=""

# Stores during the sweep of expired entries (issue 11): with the adapter above stopped,
# BENCH_SWEEP_ENTRIES expired entries go into kv_bench by SQL; a fresh adapter, whose first sweep
# starts at once, serves wrk store in slices of BENCH_SWEEP_SLICE until the sweep has removed them
# all (then one slice more, without sweep, for comparison). A poller records every second the rows
# MariaDB deleted, its row lock waits and its undo history, and when no expired entry is left.
if wanted sweep; then
    SWEEP_ENTRIES="${BENCH_SWEEP_ENTRIES:-1000000}" SWEEP_USERS="${BENCH_SWEEP_USERS:-1000}"
    SLICE="${BENCH_SWEEP_SLICE:-10s}" SWEEP_MAX="${BENCH_SWEEP_MAX:-900}" LAYOUT="${BENCH_SWEEP_LAYOUT:-spread}"
    [[ "$SWEEP_ENTRIES$SWEEP_USERS$SWEEP_MAX" =~ ^[0-9]+$ && "$SLICE" =~ ^[0-9]+s?$ ]] ||
        die "BENCH_SWEEP_ENTRIES, BENCH_SWEEP_USERS and BENCH_SWEEP_MAX must be numbers, BENCH_SWEEP_SLICE seconds"
    SLICE="${SLICE%s}s"
    log "sweep: $SWEEP_ENTRIES expired entries over $SWEEP_USERS new users and the bench users, $LAYOUT (bench/prepare.py --expired)"
    python3 "$BENCH/prepare.py" --run "$RUN_ID" --expired "$SWEEP_ENTRIES" --expired-users "$SWEEP_USERS" \
        --expired-layout "$LAYOUT" --mysql "$MYSQL $DB" || die "prepare --expired failed"
    # Handler_delete and Handler_write: rows deleted and inserted, server-wide (MariaDB 10.11 has no
    # Innodb_rows_deleted).
    LOCK_COUNTERS=(Innodb_row_lock_time_max Innodb_row_lock_current_waits Innodb_deadlocks Handler_delete
        Handler_write Innodb_history_list_length "${SERVER_COUNTERS[@]}")
    status0="$(status_json "${LOCK_COUNTERS[@]}")"
    deleted0="$(jq '.Handler_delete // 0' <<<"$status0")"
    poll="$WORK/sweep-poll.txt" done_file="$WORK/sweep-done"
    rm -f "$done_file"
    (   # "<unix time> <JSON>" every second; "<unix time>" in $done_file once none expired is left
        for ((i = 0; i < SWEEP_MAX + 600; i++)); do
            now="$(date +%s.%N)"
            status="$(status_json Handler_delete Innodb_row_lock_waits Innodb_row_lock_current_waits \
                Innodb_history_list_length)" || status='{}'
            echo "$now $status"
            # Server-wide, the count may include others' deletes: the table has the last word,
            # asked when as many rows were deleted as were expired, and every 5 s.
            if { (($(jq '.Handler_delete // 0' <<<"$status") - deleted0 >= SWEEP_ENTRIES)) || ((i % 5 == 4)); } &&
                [[ "$($MYSQL "$DB" -e "SELECT EXISTS (SELECT 1 FROM entries WHERE expires_at <= $(date +%s%3N))")" == 0 ]]; then
                echo "$now" >"$done_file"
                break
            fi
            sleep 1
        done
    ) >"$poll" 2>&1 8>&- &
    POLLER_PID=$!
    log "the adapter on $BASE again (pool of $CONNECTIONS, RUST_LOG=info): its first sweep starts at once"
    adapter_start="$(date +%s.%N)"
    start_adapter "$WORK/adapter-sweep.log" RUST_LOG=info NO_COLOR=1
    adapter_ready="$(date +%s.%N)" t0="$(ticks)" started=$SECONDS slice=0
    while :; do
        slice_start="$(date +%s.%N)"
        WRK_DURATION="$SLICE" WRK_TAG="w$slice" run_wrk store "$CONNECTIONS"
        record "{\"kind\":\"sweep_slice\",\"index\":$slice,\"start\":$slice_start,\"end\":$(date +%s.%N),\"wrk\":$WRK_JSON}"
        slice=$((slice + 1))
        [[ ! -e "$done_file" ]] || break
        ((SECONDS - started < SWEEP_MAX)) || { log "the sweep has not finished after $SWEEP_MAX s of stores"; break; }
    done
    record_cpu sweep "$(jq -s '[.[] | select(.kind == "sweep_slice") | .wrk.requests] | add' \
        <(sed -n 's/^BENCH_JSON //p' "$RESULTS"))" "$t0" "$(ticks)"
    status1="$(status_json "${LOCK_COUNTERS[@]}")"
    if [[ -e "$done_file" ]]; then # the same stores without a sweep, for comparison
        slice_start="$(date +%s.%N)"
        WRK_DURATION="$SLICE" WRK_TAG="after" run_wrk store "$CONNECTIONS"
        record "{\"kind\":\"sweep_slice\",\"index\":$slice,\"after\":true,\"start\":$slice_start,\"end\":$(date +%s.%N),\"wrk\":$WRK_JSON}"
    fi
    stop "$POLLER_PID"
    POLLER_PID=""
    stop "$ADAPTER_PID"
    ADAPTER_PID=""
    left="$($MYSQL "$DB" -e "SELECT COUNT(*) FROM entries WHERE expires_at IS NOT NULL")"
    record "$(jq -nc --argjson entries "$SWEEP_ENTRIES" --argjson users "$SWEEP_USERS" --argjson left "$left" --arg layout "$LAYOUT" \
        --argjson adapter_start "$adapter_start" --argjson adapter_ready "$adapter_ready" \
        --argjson done_at "$(cat "$done_file" 2>/dev/null || echo null)" --argjson before "$status0" \
        --argjson after "$status1" --arg log "$WORK/adapter-sweep.log" --arg poll "$poll" --arg slice "$SLICE" \
        --argjson max "$SWEEP_MAX" --argjson lock_wait_timeout "$($MYSQL -e 'SELECT @@innodb_lock_wait_timeout')" \
        '{kind: "sweep", entries: $entries, new_users: $users, layout: $layout, left: $left, adapter_start: $adapter_start,
          adapter_ready: $adapter_ready, done_at: $done_at, status_before: $before, status_after: $after,
          log: $log, poll: $poll, slice: $slice, max_seconds: $max, lock_wait_timeout_s: $lock_wait_timeout}')"
    check_counters "after the sweep"
fi

# Issue 13: BENCH_FLEET's instances (64 by default), each a real function process with its own
# pool of one connection, under bench/fleet.py's Runtime API emulator, against MariaDB with
# max_connections first below their number, then above it (each restored afterwards): under load,
# twice as many callers as instances; then, for BENCH_FLEET_LOW seconds, fewer callers than
# connections. Below the limit twice: with the pools keeping their connection between requests
# (the default, right behind RDS Proxy), then closing it after each (DATABASE_MAX_IDLE_CONNECTIONS=0,
# for a database without a proxy), which recovers as soon as the load drops. The instances
# connect as a user of their own, whom max_connections limits.
if wanted fleet; then
    read -ra fleet <<<"${BENCH_FLEET:-data-retrieve=48 data-store=16}"
    FLEET_BELOW="${BENCH_FLEET_BELOW:-32}" FLEET_ABOVE="${BENCH_FLEET_ABOVE:-200}"
    [[ "$FLEET_BELOW$FLEET_ABOVE${BENCH_FLEET_LOAD:-20}${BENCH_FLEET_LOW:-10}${BENCH_FLEET_LOW_CALLERS:-8}" =~ ^[0-9]+$ ]] ||
        die "BENCH_FLEET_BELOW, _ABOVE, _LOAD, _LOW and _LOW_CALLERS must be numbers"
    grep -o 'token = "[^"]*"' "$DATA" | cut -d'"' -f2 >"$WORK/fleet-tokens.txt"
    [[ -s "$WORK/fleet-tokens.txt" ]] || die "no token in $DATA"
    events="$REPO_ROOT/tests/fixtures/events/http-api-v2" value="$(sed -n 's/^VALUE = "\(.*\)"$/\1/p' "$DATA")"
    # The fixtures' __TOKEN__ stays for fleet.py, which fills in each bench user's token in turn:
    # retrieve gets an existing key r<n mod 1000>, store a new key per invocation (no
    # Content-Length: its length varies, as in refresh.json).
    jq '.rawPath = "/data/retrieve/r__K__" | .requestContext.http.path = .rawPath | .pathParameters = {key: "r__K__"}' \
        "$events/retrieve.json" >"$WORK/fleet-data-retrieve.json"
    fleet_args=()
    for spec in "${fleet[@]}"; do
        f="${spec%%=*}" n="${spec#*=}"
        [[ -x "$REPO_ROOT/target/release/$f" && "$n" =~ ^[0-9]+$ ]] || die "BENCH_FLEET: no binary or count in '$spec'"
        fleet_args+=(--function "$f=$n:$WORK/fleet-$f.json")
    done
    for setting in below:"$FLEET_BELOW": below-no-idle:"$FLEET_BELOW":0 above:"$FLEET_ABOVE":; do
        IFS=: read -r tag max idle <<<"$setting"
        jq --arg body "{\"keyN\":\"f$RUN_ID$tag-__N__\",\"valueN\":\"$value\"}" '.body = $body | del(.headers["content-length"])' \
            "$events/store.json" >"$WORK/fleet-data-store.json"
        for spec in "${fleet[@]}"; do [[ -s "$WORK/fleet-${spec%%=*}.json" ]] || die "no event template for ${spec%%=*}"; done
        log "fleet: ${fleet[*]} against max_connections $max (bench/fleet.py)"
        out="$WORK/fleet-$tag.txt"
        FLEET_RESTORE="SET GLOBAL max_connections = $($MYSQL -e 'SELECT @@max_connections'); DROP USER IF EXISTS 'kv_fleet'@'127.0.0.1'"
        env ${idle:+DATABASE_MAX_IDLE_CONNECTIONS=$idle} JWT_SECRET="$JWT_SECRET" QUOTA_MAX_KEYS=10000000 QUOTA_MAX_BYTES=10000000000 RUST_LOG=warn NO_COLOR=1 \
            timeout $((${BENCH_FLEET_LOAD:-20} + ${BENCH_FLEET_LOW:-10} + 180)) python3 "$BENCH/fleet.py" "${fleet_args[@]}" \
            --bin-dir "$REPO_ROOT/target/release" --tokens "$WORK/fleet-tokens.txt" --mysql "$MYSQL" \
            --host-port "$DB_HOST:$DB_PORT" --db "$DB" --max-connections "$max" --load "${BENCH_FLEET_LOAD:-20}" \
            --low "${BENCH_FLEET_LOW:-10}" --low-callers "${BENCH_FLEET_LOW_CALLERS:-8}" --dispatch "${BENCH_FLEET_DISPATCH:-lru}" \
            ${BENCH_FLEET_CALLERS:+--callers "$BENCH_FLEET_CALLERS"} --log "$WORK/fleet-$tag.log" >"$out" 2>&1 8>&- ||
            { cat "$out" >&2; tail -20 "$WORK/fleet-$tag.log" >&2; die "bench/fleet.py failed"; }
        FLEET_RESTORE=""
        grep -v '^BENCH_JSON ' "$out"
        grep '^BENCH_JSON ' "$out" >>"$RESULTS"
        sleep 2
    done
fi

if wanted lambda; then
    log "Lambda bootstrap sizes, as deployed (cargo lambda build --release --arm64)"
    for f in "${FUNCTIONS[@]}"; do
        bin="$REPO_ROOT/target/lambda/$f/bootstrap"
        [[ -f "$bin" ]] || die "$bin was not built"
        record "{\"kind\":\"bootstrap\",\"function\":\"$f\",\"bytes\":$(stat -c %s "$bin"),\"arch\":\"$(file -b "$bin" | cut -d, -f2 | xargs)\"}"
        tail -n 1 "$RESULTS" | sed 's/^BENCH_JSON /  /'
    done
    # Cold starts of the x86_64 release builds, each with a queued API Gateway v2 event: a valid
    # token and an existing key for data-retrieve, a user's credentials for auth-token.
    log "Lambda cold starts under bench/lambda-emulator.py (${BENCH_COLD_STARTS:-10} each)"
    user="$(grep -m1 -o 'name = "[^"]*", id = [0-9]*, token = "[^"]*"' "$DATA")"
    [[ "$user" =~ name\ =\ \"([^\"]+)\".*token\ =\ \"([^\"]+)\" ]] || die "no user in $DATA"
    name="${BASH_REMATCH[1]}" token="${BASH_REMATCH[2]}" password="$(sed -n 's/^PASSWORD = "\(.*\)"$/\1/p' "$DATA")"
    events="$REPO_ROOT/tests/fixtures/events/http-api-v2"
    jq --arg auth "Bearer $token" '.headers.authorization = $auth | .rawPath = "/data/retrieve/r1"
        | .requestContext.http.path = .rawPath | .pathParameters = {key: "r1"}' "$events/retrieve.json" >"$WORK/retrieve-event.json"
    jq --arg body "{\"username\":\"$name\",\"password\":\"$password\"}" \
        '.body = $body | .headers["content-length"] = ($body | length | tostring)' "$events/token.json" >"$WORK/token-event.json"
    for pair in data-retrieve:retrieve:50 auth-token:token:10; do
        IFS=: read -r f event warm <<<"$pair"
        out="$WORK/lambda-$f.txt"
        DATABASE_URL="$DATABASE_URL" JWT_SECRET="$JWT_SECRET" RUST_LOG=warn timeout 120 python3 "$BENCH/lambda-emulator.py" \
            --binary "$REPO_ROOT/target/release/$f" --event "$WORK/$event-event.json" --name "$f" \
            --cold "${BENCH_COLD_STARTS:-10}" --warm "$warm" --mysql "$MYSQL" --db "$DB" --log "$WORK/lambda-$f.log" \
            >"$out" 2>&1 || { cat "$out" >&2; tail -20 "$WORK/lambda-$f.log" >&2; die "the cold starts of $f failed"; }
        grep '^BENCH_JSON ' "$out" | tee -a "$RESULTS" | sed 's/^BENCH_JSON /  /'
    done
fi

log "done"
record "$(jq -nc --argjson a "$RUN_STATUS0" --argjson m "$RUN_STATUS1" --argjson b "$(status_json "${RUN_STATEMENTS[@]}")" \
    '{kind: "run_statements", delta: ($b | with_entries(.value -= ($a[.key] // 0))),
      at_start: ($m | with_entries(.value -= ($a[.key] // 0)))}')"
tail -n 1 "$RESULTS" | sed 's/^BENCH_JSON /  /'
uptime
python3 "$BENCH/report.py" "$RESULTS" | tee "$WORK/summary.txt"
exit "${PIPESTATUS[0]}"
}
