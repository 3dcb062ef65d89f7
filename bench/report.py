#!/usr/bin/env python3
"""Prints the summary of one bench/run.sh run from its `BENCH_JSON {...}` lines.

Usage: report.py RESULTS_FILE
Every target of issues 4 and 11 gets PASS or MISSED. Exits 1 only when an expected measurement is
missing (the harness failed), whatever the targets say.
"""

import json
import re
import sys
from datetime import datetime

MB = 1024 * 1024
RATE_TARGETS = {  # endpoint -> (minimum req/s, target text)
    "retrieve": (5000, ">=5000/s, >=40% raw, p99<20ms"),
    "store": (3000, ">=3000/s, p99<20ms"),
    "update": (3000, ">=3000/s, p99<20ms"),
    "delete": (3000, ">=3000/s, p99<20ms"),
    "list": (2000, ">=2000/s, p99<20ms, full pages"),
    "refresh": (1000, ">=1000/s (hashes no password)"),
    "token": (52, ">=52/s (2x Node 26)"),
    "register": (46, ">=46/s (2x Node 23)"),
}
P99_LIMIT_MS, RAW_RATIO = 20, 0.40  # p99 for the data endpoints; retrieve / mariadb-slap
DATA_ENDPOINTS = ("retrieve", "store", "update", "delete", "list")
IDLE_RSS_MB, PEAK_RSS_MB, BOOTSTRAP_MB, COLD_START_MS = 30, 100, 10, 50
SWEEP_P99_LIMIT_MS = 50  # stores during the sweep
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z\s+(\w+)\s+(.*)$")


def verdict(ok):
    return "PASS" if ok else "MISSED"


def main():
    records = [json.loads(line[len("BENCH_JSON "):]) for line in open(sys.argv[1]) if line.startswith("BENCH_JSON ")]
    wrk = {r["endpoint"]: r for r in records if "endpoint" in r and "kind" not in r}
    kinds = {}
    for r in records:
        kinds.setdefault(r.get("kind"), []).append(r)
    config = kinds.get("config", [{}])[0]
    phases = set(config.get("phases", "").split())
    missing, missed = [], []

    def expect(phase, what):
        if phase in phases:
            missing.append(what)

    # The disk probe's synced writes, "<unix time> <ms>" per line, and each phase's time window.
    disk = None
    if "disk_probe" in kinds:
        with open(kinds["disk_probe"][0]["log"]) as f:
            disk = [tuple(map(float, line.split())) for line in f if len(line.split()) == 2]
    windows = {c["phase"]: (c["start"], c["end"]) for c in kinds.get("cpu", [])}

    def slowest_write_between(start, end):
        during = [ms for t, ms in disk or [] if start <= t < end]
        return max(during) if during else None

    def slowest_write(phase):
        return slowest_write_between(*windows[phase]) if phase in windows else None

    raws = [r for r in kinds.get("raw", []) if r.get("statement", "point") == "point"]
    raw = sum(r["qps"] for r in raws) / len(raws) if raws else None
    joined_raws = [r for r in kinds.get("raw", []) if r.get("statement") == "joined"]
    print("\n" + "=" * 100)
    print(f"SUMMARY (adapter kv-server on MariaDB over loopback; wrk {config.get('wrk', '?')})")
    print("=" * 100)
    print(f"{'endpoint':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'requests':>9}  {'target':<32} result")
    for name, (minimum, text) in RATE_TARGETS.items():
        r = wrk.get(name)
        if r is None:
            expect(name, f"wrk {name}")
            print(f"{name:<10} {'-':>9} {'-':>8} {'-':>8} {'-':>8} {'-':>9}  {text:<32} "
                  f"{'NO DATA' if name in phases else 'not run'}")
            continue
        notes = []
        if r["rps"] < minimum:
            notes.append(f"rate {r['rps']:.0f}<{minimum}")
        if name in DATA_ENDPOINTS and r["p99_ms"] >= P99_LIMIT_MS:
            worst = slowest_write(name)
            disk_note = "" if worst is None else f" (the disk's slowest synced write meanwhile: {worst:.0f} ms)"
            notes.append(f"p99 {r['p99_ms']:.1f}>={P99_LIMIT_MS}{disk_note}")
        if name == "retrieve" and raw and r["rps"] / raw < RAW_RATIO:
            notes.append(f"ratio {r['rps'] / raw:.0%}<40%")
        if r["non2xx"]:
            notes.append(f"non-2xx {r['codes']}")
        pages = r.get("list")
        if pages and (pages["short_pages"] or not pages["pages"]):
            notes.append(f"{pages['short_pages']} of {pages['pages']} pages without {pages['limit']} keys")
        if any(r["socket_errors"].values()):
            notes.append(f"socket errors {r['socket_errors']}")
        if notes:
            missed.append(f"{name}: " + "; ".join(notes))
        print(f"{name:<10} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['non2xx']:>8} "
              f"{r['requests']:>9}  {text:<32} {verdict(not notes)}")

    print()
    if raw:
        runs = ", ".join(f"{r['when']} {r['qps']:,.0f}/s" for r in raws)
        retrieve = wrk["retrieve"]["rps"] if "retrieve" in wrk else None
        print(f"raw MariaDB point select (mariadb-slap, MariaDB's own load tool: the target's reference; "
              f"text protocol, same table and keys, {raws[0]['threads']} connections): {raw:,.0f} queries/s, "
              f"the mean of: {runs}")
        if retrieve:
            print(f"  retrieve / raw = {retrieve / raw:.1%}   (target >= 40%: {verdict(retrieve / raw >= RAW_RATIO)})")
        if joined_raws:
            joined = sum(r["qps"] for r in joined_raws) / len(joined_raws)
            runs = ", ".join(f"{r['when']} {r['qps']:,.0f}/s" for r in joined_raws)
            print(f"raw MariaDB, the statement a retrieve sends (the session's row left-joined with the entry; "
                  f"no target): {joined:,.0f} queries/s, the mean of: {runs}")
            share = f"retrieve / that = {retrieve / joined:.1%}; " if retrieve else ""
            print(f"  {share}the session check's cost in MariaDB alone: {1 - joined / raw:.1%} of the point select's rate")
    else:
        expect("raw", "raw MariaDB rate (mariadb-slap)")
    if "list" in wrk and wrk["list"].get("list"):
        p = wrk["list"]["list"]
        print(f"list pages: {p['pages']} answered 200, {p['short_pages']} of them without {p['limit']} keys, "
              f"{p['last_pages']} last pages (next_cursor null: the listing started again)")
    for c in kinds.get("server_commands", []):
        n, more = max(c["requests"], 1), c.get("counters", {})
        tx = "".join(f", {more[k] / n:.2f} {k[4:].upper()}" for k in ("Com_begin", "Com_commit", "Com_rollback") if k in more)
        prepared = f", {more['Com_stmt_prepare'] / n:.3f} prepares" if "Com_stmt_prepare" in more else ""
        waits = more.get("Innodb_row_lock_waits")
        locks = "" if waits is None else f"; row lock waits {waits / n:.3f}" + (
            f" ({more['Innodb_row_lock_time'] / waits:.1f} ms each)" if waits and "Innodb_row_lock_time" in more else "")
        text = sum(more.get(k, 0) for k in ("Com_select", "Com_insert", "Com_update", "Com_delete"))
        print(f"MariaDB commands per {c['endpoint']} request: {text / n:.2f} text statements (SELECT, INSERT, "
              f"UPDATE, DELETE) + {c['stmt_execute'] / n:.2f} prepared executions + {c['admin_commands'] / n:.2f} "
              f"COM_PING{tx}{prepared}{locks} (server-wide counters)")
    for c in kinds.get("counters", []):
        ok = not c["mismatched_users"] and not c["wrong_value_sizes"]
        print(f"quota counters {c['when']}: {c['users']} users, {c['entries']} entries; users whose entry_count/"
              f"entry_bytes differ from their entries: {c['mismatched_users']}; entries whose value_size is not "
              f"their value's length: {c['wrong_value_sizes']}  {verdict(ok)}" + (f"  ({c['examples']})" if c["examples"] else ""))
        missed += [f"quota counters {c['when']}: {c['mismatched_users']} users, {c['wrong_value_sizes']} value sizes wrong; "
                   f"{c['examples']}"] * (not ok)
    cpu = kinds.get("cpu", [])
    if cpu:
        print("CPU per request (or raw query), microseconds (2 cores = 2,000,000 us/s; 'rest' is wrk or "
              "mariadb-slap plus anything else running on the machine):")
        for c in cpu:
            n, rest = max(c["requests"], 1), c["busy_s"] - c["adapter_s"] - c["mariadb_s"]
            print(f"  {c['phase']:<18} adapter {c['adapter_s'] / n * 1e6:7.1f}  mariadbd {c['mariadb_s'] / n * 1e6:7.1f}"
                  f"  rest {rest / n * 1e6:7.1f}  (machine busy {c['busy_s'] / c['all_s']:.0%} of {c['all_s'] / 2:.1f} s;"
                  f" CPU idle waiting on the disk {c['iowait_s']:.2f} s)")
    if disk:
        times = sorted(ms for _, ms in disk)
        print("Disk latency (bench/disk-probe.py: one synced 4 KiB write every 50 ms, as a commit's redo-log "
              "write), slowest write per phase, ms:")
        print("  " + ",  ".join(f"{c['phase']} {w:.1f}" for c in cpu for w in [slowest_write(c["phase"])] if w is not None))
        print(f"  whole run: {len(times)} writes, median {times[len(times) // 2]:.2f} ms, max {times[-1]:.1f} ms, "
              f"{sum(ms >= 20 for ms in times)} of 20 ms or more")
    elif disk is not None:
        print("Disk latency: the disk probe recorded no writes")

    if "sweep" in kinds:
        missed += sweep_summary(kinds["sweep"][0], kinds.get("sweep_slice", []), wrk.get("store"), slowest_write,
                                slowest_write_between)
    else:
        expect("sweep", "sweep")

    if "memory" in kinds:
        m = kinds["memory"][0]
        idle, peak = m["idle_rss_kb"] / 1024, m["peak_hwm_kb"] / 1024
        print(f"adapter RSS idle after warm-up: {idle:.1f} MB (target < {IDLE_RSS_MB}: {verdict(idle < IDLE_RSS_MB)});"
              f"  idle after all the load: {m['idle_after_load_kb'] / 1024:.1f} MB")
        print(f"adapter peak RSS, 64 connections on /auth/token for {m['seconds']} s: VmHWM {peak:.1f} MB, max "
              f"sampled VmRSS {m['peak_sampled_kb'] / 1024:.1f} MB (target < {PEAK_RSS_MB}: {verdict(peak < PEAK_RSS_MB)});"
              f"  token rate {m['rps']:.1f}/s, non-2xx {m['non2xx']};  VmHWM over the whole run "
              f"{m['run_hwm_kb'] / 1024:.1f} MB; {m['os_threads']} OS threads 3 s after")
        missed += [f"idle RSS {idle:.1f} MB >= {IDLE_RSS_MB} MB"] * (idle >= IDLE_RSS_MB)
        missed += [f"peak RSS {peak:.1f} MB >= {PEAK_RSS_MB} MB"] * (peak >= PEAK_RSS_MB)
    else:
        expect("memory", "memory")

    sizes = kinds.get("bootstrap", [])
    if sizes:
        print(f"Lambda bootstrap sizes, as deployed (`cargo lambda build --release`, {sizes[0]['arch']}; "
              f"target < {BOOTSTRAP_MB} MB each):")
        for s in sizes:
            mb = s["bytes"] / MB
            print(f"  {s['function']:<14} {mb:6.2f} MB  {verdict(mb < BOOTSTRAP_MB)}")
            missed += [f"bootstrap {s['function']} {mb:.2f} MB >= {BOOTSTRAP_MB} MB"] * (mb >= BOOTSTRAP_MB)
    else:
        expect("lambda", "bootstrap sizes")

    lambdas = {r["function"]: r for r in records if "cold_starts" in r}
    for name in ["data-retrieve", "auth-token"]:
        r = lambdas.get(name)
        if r is None:
            expect("lambda", f"cold start {name}")
            continue
        first, inv, w = r["first_ms"], r["first_invoke_ms"], r.get("warm_invoke_ms")
        ok = first["median"] < COLD_START_MS
        print(f"cold start {name} ({r['cold_starts']}x): spawn -> first answer min {first['min']} / median "
              f"{first['median']} ms (target < {COLD_START_MS}: {verdict(ok)});  split: init (spawn -> first GET "
              f"/next) median {r['init_ms']['median']} ms + first invocation median {inv['median']} ms")
        if w:
            print(f"  warm {name} ({r['warm_invocations']}x): median {w['median']} ms, min {w['min']}, max {w['max']}"
                  + (f";  first minus warm median = {inv['median'] - w['median']:.2f} ms: the lazy pool's connect "
                     "(TCP + handshake + auth + session setup)" if name == "data-retrieve"
                     else " (each one an Argon2id verification)"))
        reuse = r.get("connection_reuse")
        if reuse:
            print(f"  DB connections of the function before/after the warm invocations: {reuse['ids_before']} / "
                  f"{reuse['ids_after']} ({reuse['opened_during_warm']} opened during {r['warm_invocations']} warm "
                  f"invocations) -> reused: {'yes' if reuse['reused'] else 'NO'} (server-wide Connections delta "
                  f"{reuse['global_connections_delta']}: this check's own client and other clients included)")
            missed += [f"{name}: warm invocations did not reuse the DB connection"] * (not reuse["reused"])
        missed += [f"cold start {name} median {first['median']} ms >= {COLD_START_MS} ms"] * (not ok)

    fleets = kinds.get("fleet", [])
    for f in fleets:
        n = sum(f["instances"].values())
        print(f"fleet of {n} function processes ({', '.join(f'{k} x{v}' for k, v in f['instances'].items())}; "
              f"bench/fleet.py, dispatch {f['dispatch']}), max_connections {f['max_connections']}, "
              f"DATABASE_MAX_IDLE_CONNECTIONS {f.get('max_idle_connections', 'default (1)')}: "
              f"{f['load_s']:g} s of {f['callers']} callers, then {f['low_s']:g} s of {f['low_callers']}")
        d, u = f["duration_ms"], f["unavailable_ms"]
        print(f"  {f['invocations']:,} invocations: {f['counts']}; durations p50 {d['p50']} / p99 {d['p99']} / max "
              f"{d['max']} ms, 503s max {u['max']} ms (acquire timeout {f['acquire_timeout_s']:g} s)")
        a = f["instances_answering"]
        print(f"  instances that answered only 200: {a['only_200']}, only 503: {a['only_503']}, both: {a['both']}")
        if "after_drop" in f:
            print(f"  after the drop: {f['after_drop']['unavailable']} 503s, {f['after_drop']['late']} of them 1 s "
                  "or more after it")
        print(f"  MariaDB: {f['status_delta']}; sampled at most {f['connections_sampled_max']} connections, "
              f"{f['fleet_connections_sampled_max']} of them the fleet's")
        print("  per second (200/503): " + "  ".join(
            f"{'|' if s['phase'] == 'low' and i and f['series'][i - 1]['phase'] == 'load' else ''}"
            f"{s['ok']}/{s['unavailable']}" + (f"/{s['other']}?" if s["other"] else "") for i, s in enumerate(f["series"])))
        for c in f["checks"]:
            print(f"  {c['check']}: {verdict(c['ok'])}: {c['detail']}")
            missed += [f"fleet at max_connections {f['max_connections']}, idle "
                       f"{f.get('max_idle_connections', 'default (1)')}: {c['check']}: {c['detail']}"] * (not c["ok"])
    if len(fleets) < 3:
        expect("fleet", "fleet (all three settings)")
    if "run_statements" not in kinds:
        missing.append("prepared statements over the run")
    for r in kinds.get("run_statements", []):
        d = r["delta"]
        ok = not d.get("Com_stmt_prepare") and not d.get("Com_stmt_execute")
        print(f"prepared statements over the whole run (server-wide, other clients included): Com_stmt_prepare "
              f"+{d.get('Com_stmt_prepare')}, Com_stmt_execute +{d.get('Com_stmt_execute')}, Com_stmt_close "
              f"+{d.get('Com_stmt_close')}, beside {d.get('Questions'):,} statements in all (Questions)  "
              f"(target 0: {verdict(ok)})")
        m = r.get("at_start", {})
        print(f"  of which from the run's start to the adapter's first /health (its migrations): Com_stmt_prepare "
              f"+{m.get('Com_stmt_prepare')}, Com_stmt_execute +{m.get('Com_stmt_execute')}")
        missed += [f"prepared statements over the run: {d}"] * (not ok)

    print()
    print("\n".join(f"MISSED: {m}" for m in missed) if missed else "All targets met.")
    for m in missing:
        print(f"HARNESS FAILURE: no measurement for {m}")
    sys.exit(1 if missing else 0)


def log_time(text):
    return datetime.fromisoformat(text + "+00:00").timestamp()


def sweep_summary(sweep, slices, store, slowest_write, slowest_write_between):
    """Prints the sweep phase's figures; returns its missed targets."""
    missed = []
    # The adapter's log: when it started serving (its first sweep starts then), each sweep's line.
    serving, sweeps, problems = None, [], []
    with open(sweep["log"]) as f:
        for line in f:
            m = LOG_TIME.match(ANSI.sub("", line).strip())
            if not m:
                continue
            t, level, text = log_time(m.group(1)), m.group(2), m.group(3)
            if "serving the key-value API" in text and serving is None:
                serving = t
            elif "swept expired entries" in text:
                fields = dict(re.findall(r"(\w+)=(\d+)", text))
                sweeps.append((t, int(fields.get("deleted", 0)), int(fields.get("batches", 0))))
            if level in ("WARN", "ERROR"):
                problems.append(text)
    # The poller's samples: rows deleted server-wide, lock waits, undo history length.
    samples = []
    with open(sweep["poll"]) as f:
        for line in f:
            t, _, status = line.partition(" ")
            try:
                samples.append((float(t), json.loads(status)))
            except ValueError:
                pass
    before, after = sweep["status_before"], sweep["status_after"]
    deleted0 = before.get("Handler_delete", 0)
    moving = [t for t, s in samples if s.get("Handler_delete", deleted0) > deleted0]
    start = serving or sweep["adapter_start"]
    end = sweeps[-1][0] if sweeps else sweep["done_at"]
    deleted, batches = sum(d for _, d, _ in sweeps), sum(b for _, _, b in sweeps)
    layout = {"spread": "spread: each batch touches 500 users", "clustered": "clustered: each batch touches 1-2 users"}
    print(f"sweep of {sweep['entries']:,} expired entries ({sweep['new_users']} new users and the bench users, "
          f"{layout.get(sweep.get('layout', 'spread'))}; batches of 500; the adapter's log at info):")
    if end is None:
        print(f"  NOT FINISHED within {sweep['max_seconds']} s of stores: {sweep['left']:,} expired entries left")
        missed.append(f"sweep: not finished in {sweep['max_seconds']} s, {sweep['left']} expired entries left")
    else:
        print(f"  {end - start:.1f} s from the adapter's start (its first sweep) to its last sweep line; "
              f"{len(sweeps)} sweep lines, deleted={deleted:,} in batches={batches:,} "
              f"({deleted / max(end - start, 1e-9):,.0f} entries/s); expired entries left after the run: {sweep['left']}")
        if moving:
            print(f"  the poller saw deletions from +{moving[0] - start:.1f} s to +{moving[-1] - start:.1f} s"
                  + (f"; no expired entry left at +{sweep['done_at'] - start:.1f} s" if sweep["done_at"] else ""))
        print("  sweep lines (time from start, deleted, batches): "
              + ", ".join(f"+{t - start:.0f} s {d:,}/{b}" for t, d, b in sweeps))
    if deleted != sweep["entries"]:
        missed.append(f"sweep: the log's deleted={deleted} is not the {sweep['entries']} entries inserted")
    if sweep["left"]:
        missed.append(f"sweep: {sweep['left']} expired entries left")
    if problems:
        print(f"  adapter warnings/errors: {len(problems)}, the first: {problems[0][:300]}")
        missed.append(f"sweep: {len(problems)} warnings or errors in the adapter's log")

    during = [s for s in slices if not s.get("after") and (end is None or s["start"] < end)]
    if not during:
        missed.append("sweep: no store slice overlapped the sweep")
        return missed
    w = [s["wrk"] for s in during]
    requests, seconds = sum(r["requests"] for r in w), sum(r["seconds"] for r in w)
    codes = {}
    for r in w:
        for code, n in r["codes"].items():
            codes[code] = codes.get(code, 0) + n
    non2xx = sum(r["non2xx"] for r in w)
    sockets = {k: sum(r["socket_errors"][k] for r in w) for k in w[0]["socket_errors"]}
    slowest = max(r["p99_ms"] for r in w)
    # The target is the p99 of all the stores during the sweep: under 50 ms when fewer than 1 %
    # of them took longer (each slice counts its requests over 50 ms).
    if any("over_50ms" not in r for r in w):
        sys.exit("report: a sweep slice has no over_50ms (wrk.lua older than this report)")
    over = sum(r["over_50ms"] for r in w)
    met = over < requests / 100
    print(f"  stores during the sweep, wrk {sweep['slice']} slices {during[0]['index']}..{during[-1]['index']} "
          f"({seconds:.0f} s): {requests / seconds:,.1f} req/s, p50 {min(r['p50_ms'] for r in w):.2f}-"
          f"{max(r['p50_ms'] for r in w):.2f} ms; {over:,} of {requests:,} took over {SWEEP_P99_LIMIT_MS} ms "
          f"({100 * over / requests:.2f} %), so their p99 is {'under' if met else 'at or over'} {SWEEP_P99_LIMIT_MS} ms "
          f"(target: {verdict(met)}); the slowest slice's p99 {slowest:.2f} ms, max {max(r['max_ms'] for r in w):.1f} ms, "
          f"codes {codes}, socket errors {sockets}")
    print("    per slice (req/s, p50, p99 ms, the disk's slowest synced write ms): " + ", ".join(
        f"{s['index']}: {s['wrk']['rps']:,.0f} {s['wrk']['p50_ms']:.1f} {s['wrk']['p99_ms']:.1f} "
        f"{slowest_write_between(s['start'], s['end']) or 0:.0f}" for s in during))
    for s in slices:
        if s.get("after"):
            r = s["wrk"]
            print(f"  the same stores right after the sweep ({sweep['slice']}): {r['rps']:,.1f} req/s, "
                  f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, non-2xx {r['non2xx']}")
    if store:
        print(f"  (the store phase, before: {store['rps']:,.1f} req/s, p50 {store['p50_ms']:.2f} ms, "
              f"p99 {store['p99_ms']:.2f} ms)")
    if not met:
        worst = slowest_write("sweep")
        missed.append(f"sweep: {over} of {requests} stores over {SWEEP_P99_LIMIT_MS} ms, p99 >= {SWEEP_P99_LIMIT_MS} ms"
                      + ("" if worst is None else f" (the disk's slowest synced write meanwhile: {worst:.0f} ms)"))
    if non2xx or any(sockets.values()):
        missed.append(f"sweep: stores answered {codes}, socket errors {sockets} (a lock wait timeout is a 500)")

    def delta(name):
        return after[name] - before[name] if name in after and name in before else None
    waits, wait_ms, deadlocks = delta("Innodb_row_lock_waits"), delta("Innodb_row_lock_time"), delta("Innodb_deadlocks")
    history = [s["Innodb_history_list_length"] for _, s in samples if "Innodb_history_list_length" in s]
    print(f"  MariaDB over the phase (server-wide): Innodb_row_lock_waits +{waits}"
          + (f", row lock time +{wait_ms} ms ({wait_ms / waits:.1f} ms a wait)" if waits and wait_ms is not None else "")
          + f", Innodb_row_lock_time_max {before.get('Innodb_row_lock_time_max')} -> {after.get('Innodb_row_lock_time_max')} ms"
          f" (since the server started), Innodb_deadlocks "
          + (f"+{deadlocks}" if deadlocks is not None else "not available")
          + f"; innodb_lock_wait_timeout {sweep['lock_wait_timeout_s']} s"
          + (f"; undo history length max {max(history):,}" if history else ""))
    tx = {k[4:].upper(): delta(k) for k in ("Com_begin", "Com_commit", "Com_rollback", "Com_stmt_execute") if delta(k) is not None}
    print(f"  statements over the phase (stores and sweep): {tx}; rows deleted +{delta('Handler_delete')}, "
          f"inserted +{delta('Handler_write')} (Handler_delete, Handler_write)")
    return missed


if __name__ == "__main__":
    main()
