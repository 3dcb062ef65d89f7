#!/usr/bin/env python3
"""Prepares the data of bench/run.sh's wrk runs and writes it as a Lua file for bench/wrk.lua.

Through the API (so that users, hashes and tokens are the service's own), registers USERS users
and gets a token for each. In MariaDB (bulk INSERT ... SELECT from its sequence engine, in
seconds): r0 .. r<KEYS-1> and u0 .. u<KEYS-1> for every user (retrieve and update), and
d<t>-<n> for every wrk thread t and n < DELETE_KEYS, held by user n % USERS (delete).

Usage: prepare.py BASE_URL OUT_LUA --run ID --users N --keys N --delete-keys N --threads N
       --mysql "mariadb --no-defaults -h127.0.0.1 -P33061 -ukv -p... kv_bench"
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("out")
    parser.add_argument("--run", required=True)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--delete-keys", type=int, default=100000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mysql", required=True, help="client command line, database included")
    args = parser.parse_args()

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

    ids = ",".join(f"({i},{u['id']})" for i, u in enumerate(users))
    n_keys, n_del = args.keys, args.delete_keys
    sql = f"""
CREATE TEMPORARY TABLE bench_users (idx INT PRIMARY KEY, id BIGINT NOT NULL);
INSERT INTO bench_users VALUES {ids};
INSERT INTO entries (user_id, entry_key, value)
  SELECT u.id, CONCAT(p.prefix, s.seq), '{VALUE}'
  FROM bench_users u JOIN seq_0_to_{n_keys - 1} s
  JOIN (SELECT 'r' AS prefix UNION ALL SELECT 'u') p;
INSERT INTO entries (user_id, entry_key, value)
  SELECT u.id, CONCAT('d', t.seq, '-', s.seq), '{VALUE}'
  FROM seq_1_to_{args.threads} t JOIN seq_0_to_{n_del - 1} s
  JOIN bench_users u ON u.idx = s.seq % {len(users)};
SELECT COUNT(*) FROM entries;
"""
    result = subprocess.run(shlex.split(args.mysql) + ["--batch", "--skip-column-names"],
                            input=sql, text=True, capture_output=True, timeout=300)
    if result.returncode != 0:
        sys.exit(f"prepare: SQL failed: {result.stderr.strip()}")
    rows = int(result.stdout.split()[-1])

    with open(args.out, "w") as out:
        out.write(f"-- written by bench/prepare.py for run {args.run}\n")
        out.write(f"RUN = {lua_string(args.run)}\nPASSWORD = {lua_string(PASSWORD)}\n")
        out.write(f"VALUE = {lua_string(VALUE)}\nKEYS_PER_USER = {n_keys}\n")
        out.write(f"DELETE_KEYS_PER_THREAD = {n_del}\nUSERS = {{\n")
        for u in users:
            out.write(f"  {{ name = {lua_string(u['name'])}, id = {u['id']}, "
                      f"token = {lua_string(u['token'])} }},\n")
        out.write("}\n")
    print(f"prepare: {len(users)} users with tokens, {rows} entries in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
