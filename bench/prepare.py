#!/usr/bin/env python3
"""Prepares the data of bench/run.sh's wrk runs and writes it as a Lua file for bench/wrk.lua.

Through the API (so that users, hashes and tokens are the service's own), registers USERS users
and gets a token for each. In MariaDB (bulk INSERT ... SELECT from its sequence engine, in
seconds): r0 .. r<KEYS-1> and u0 .. u<KEYS-1> for every user (retrieve and update),
d<t>-<n> for every wrk thread t and n < DELETE_KEYS, held by user n % USERS (delete), and
l00000 .. l<LIST_KEYS-1> for the first user only (list; zero-padded, so that byte order is
numeric order). Every row is valid under the schema of issue 11: its own etag, value_size 64, no
expiry; then each bench user's quota counters (entry_count, entry_bytes) are set from the
aggregates of their entries, as the service would have kept them.

With --expired N (the sweep phase; no API, no Lua file), it instead creates --expired-users
users in SQL and N expired entries x<n>, which expired an hour and N - n milliseconds ago (so the
sweep takes them in the order of n). With --expired-layout spread (the default), entry n belongs
to user n mod U (U: the new users and the bench users of --run), so that each sweep batch of 500
touches 500 different users, the bench users among them; with clustered, to user n * U / N, so
that each user's entries expire together and a batch touches one or two users. Then it sets the
counters of all those users from the aggregates, so that the sweep's decrements must end exactly
at what is left.

Usage: prepare.py BASE_URL OUT_LUA --run ID --users N --keys N --delete-keys N --threads N
       --list-keys N --mysql "mariadb --no-defaults -h127.0.0.1 -P33061 -ukv -p... kv_bench"
       prepare.py --run ID --expired N --expired-users N --expired-layout spread|clustered --mysql "..."
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request

PASSWORD = "Str0ng!Passw0rd"
VALUE = "v" * 64  # a 64-byte value for every prepared entry
HOUR_MS = 3_600_000

# Sets the quota counters of the users in the temporary table `counted` (id) from their entries.
SET_COUNTERS = """
UPDATE users
  JOIN counted ON counted.id = users.id
  LEFT JOIN (SELECT e.user_id, COUNT(*) AS n, SUM(LENGTH(e.entry_key) + e.value_size) AS bytes
             FROM entries e JOIN counted c ON c.id = e.user_id GROUP BY e.user_id) AS held
    ON held.user_id = users.id
  SET users.entry_count = COALESCE(held.n, 0), users.entry_bytes = COALESCE(held.bytes, 0);
"""


def post(url, body, timeout=30):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def lua_string(text):
    return json.dumps(text)  # a JSON string of ASCII is a valid Lua string literal


def run_sql(mysql, sql, timeout=600):
    result = subprocess.run(shlex.split(mysql) + ["--batch", "--skip-column-names"],
                            input=sql, text=True, capture_output=True, timeout=timeout)
    if result.returncode != 0:
        sys.exit(f"prepare: SQL failed: {result.stderr.strip()}")
    return result.stdout


def prepare_expired(args):
    """The sweep phase's data: --expired expired entries over --expired-users new users and the
    bench users of --run."""
    started = time.monotonic()
    n, extra = args.expired, args.expired_users
    base = int(time.time() * 1000) - HOUR_MS - n  # entry n expired at base + n
    chunk = 100_000  # rows per INSERT: one transaction each, not one of a million rows
    owner = "s.seq % @users" if args.expired_layout == "spread" else f"FLOOR(s.seq * @users / {n})"
    inserts = "\n".join(
        f"INSERT INTO entries (user_id, entry_key, value, value_size, etag, expires_at)"
        f" SELECT su.id, CONCAT('x', s.seq), '{VALUE}', {len(VALUE)}, MD5(CONCAT(su.id, '/x', s.seq)),"
        f" {base} + s.seq FROM seq_{lo}_to_{min(lo + chunk, n) - 1} s"
        f" JOIN sweep_users su ON su.idx = {owner};"
        for lo in range(0, n, chunk))
    sql = f"""
INSERT INTO users (username, username_key, email, password_hash, full_name, age, gender)
  SELECT CONCAT('x{args.run}_', seq), CONCAT('x{args.run}_', seq), CONCAT('x{args.run}_', seq, '@bench.example'),
         'not-a-hash', 'Sweep User', 30, 'other'
  FROM seq_1_to_{extra};
CREATE TEMPORARY TABLE sweep_users (idx INT PRIMARY KEY, id BIGINT NOT NULL);
INSERT INTO sweep_users
  SELECT ROW_NUMBER() OVER (ORDER BY id) - 1, id FROM users
  WHERE username LIKE 'x{args.run}\\_%' OR username LIKE 'u{args.run}\\_%';
SET @users = (SELECT COUNT(*) FROM sweep_users);
{inserts}
CREATE TEMPORARY TABLE counted (id BIGINT PRIMARY KEY);
INSERT INTO counted SELECT id FROM sweep_users;
{SET_COUNTERS}
SELECT @users, COUNT(*) FROM entries WHERE expires_at <= {base + n};
"""
    users, expired = map(int, run_sql(args.mysql, sql, timeout=1800).split()[-2:])
    if expired != n:
        sys.exit(f"prepare: {expired} expired entries in the database, not {n}")
    print(f"prepare: {n} expired entries over {users} users ({extra} new, {args.expired_layout}) in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url", nargs="?")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--run", required=True)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--delete-keys", type=int, default=100000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--list-keys", type=int, default=10000)
    parser.add_argument("--refresh-sessions", type=int, default=64)
    parser.add_argument("--expired", type=int, help="the sweep phase's data instead (see above)")
    parser.add_argument("--expired-users", type=int, default=1000)
    parser.add_argument("--expired-layout", choices=["spread", "clustered"], default="spread")
    parser.add_argument("--mysql", required=True, help="client command line, database included")
    args = parser.parse_args()
    if args.expired is not None:
        return prepare_expired(args)
    if args.base_url is None or args.out is None:
        parser.error("BASE_URL and OUT_LUA are required without --expired")

    started = time.monotonic()
    users = []
    for i in range(args.users):
        name = f"u{args.run}_{i}"
        status, body = post(
            f"{args.base_url}/auth/register",
            {"username": name, "email": f"{name}@bench.example", "password": PASSWORD,
             "full_name": "Bench User", "age": 30, "gender": "other"},
        )
        if status != 200:
            sys.exit(f"prepare: register {name} answered {status}: {body}")
        user_id = int(body["data"]["user_id"])
        status, body = post(f"{args.base_url}/auth/token", {"username": name, "password": PASSWORD})
        if status != 200:
            sys.exit(f"prepare: token for {name} answered {status}: {body}")
        users.append({"name": name, "id": user_id, "token": body["data"]["access_token"]})

    # Sessions for the refresh phase: one login each, the users in turn; wrk follows each
    # session's refresh tokens, since each one is good for one refresh.
    refresh_tokens = []
    for i in range(args.refresh_sessions):
        name = users[i % len(users)]["name"]
        status, body = post(f"{args.base_url}/auth/token", {"username": name, "password": PASSWORD})
        if status != 200:
            sys.exit(f"prepare: token for {name} answered {status}: {body}")
        refresh_tokens.append(body["data"]["refresh_token"])

    ids = ",".join(f"({i},{u['id']})" for i, u in enumerate(users))
    n_keys, n_del, n_list = args.keys, args.delete_keys, args.list_keys
    # Valid rows under issue 11's schema: a tag of their own (32 hex digits), the value's size,
    # no expiry. LPAD keeps l00000 .. l09999 in numeric order byte for byte.
    columns = "INSERT INTO entries (user_id, entry_key, value, value_size, etag)"
    tag = "MD5(CONCAT(u.id, '/', {}))"
    key_rw, key_del = "CONCAT(p.prefix, s.seq)", "CONCAT('d', t.seq, '-', s.seq)"
    key_list = f"CONCAT('l', LPAD(s.seq, {max(len(str(n_list - 1)), 5)}, '0'))"
    list_insert = "" if n_list <= 0 else f"""{columns}
  SELECT u.id, {key_list}, '{VALUE}', {len(VALUE)}, {tag.format(key_list)}
  FROM bench_users u JOIN seq_0_to_{n_list - 1} s WHERE u.idx = 0;"""
    sql = f"""
CREATE TEMPORARY TABLE bench_users (idx INT PRIMARY KEY, id BIGINT NOT NULL);
INSERT INTO bench_users VALUES {ids};
{columns}
  SELECT u.id, {key_rw}, '{VALUE}', {len(VALUE)}, {tag.format(key_rw)}
  FROM bench_users u JOIN seq_0_to_{n_keys - 1} s
  JOIN (SELECT 'r' AS prefix UNION ALL SELECT 'u') p;
{columns}
  SELECT u.id, {key_del}, '{VALUE}', {len(VALUE)}, {tag.format(key_del)}
  FROM seq_1_to_{args.threads} t JOIN seq_0_to_{n_del - 1} s
  JOIN bench_users u ON u.idx = s.seq % {len(users)};
{list_insert}
CREATE TEMPORARY TABLE counted (id BIGINT PRIMARY KEY);
INSERT INTO counted SELECT id FROM bench_users;
{SET_COUNTERS}
SELECT COUNT(*) FROM entries;
"""
    rows = int(run_sql(args.mysql, sql).split()[-1])

    with open(args.out, "w") as out:
        out.write(f"-- written by bench/prepare.py for run {args.run}\n")
        out.write(f"RUN = {lua_string(args.run)}\nPASSWORD = {lua_string(PASSWORD)}\n")
        out.write(f"VALUE = {lua_string(VALUE)}\nKEYS_PER_USER = {n_keys}\n")
        out.write(f"DELETE_KEYS_PER_THREAD = {n_del}\nLIST_KEYS = {n_list}\nUSERS = {{\n")
        for u in users:
            out.write(f"  {{ name = {lua_string(u['name'])}, id = {u['id']}, "
                      f"token = {lua_string(u['token'])} }},\n")
        out.write("}\nREFRESH_TOKENS = {\n")
        for token in refresh_tokens:
            out.write(f"  {lua_string(token)},\n")
        out.write("}\n")
    print(f"prepare: {len(users)} users with tokens, {len(refresh_tokens)} sessions to refresh, {rows} entries in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
