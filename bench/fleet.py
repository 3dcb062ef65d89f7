#!/usr/bin/env python3
"""A fleet of real Lambda function processes under one Runtime API emulator, against MariaDB.

    fleet.py --function data-retrieve=48:retrieve.json --function data-store=16:store.json
             --bin-dir target/release --tokens tokens.txt --mysql "mariadb --no-defaults -h... -u... -p..."
             --db kv_bench --max-connections 32 [--callers 128] [--low-callers 8] [--load 20] [--low 10]

Issue 13: N instances (the --function counts; each its own process, with its own pool of one
connection, as on Lambda) against a MariaDB whose max_connections is set to --max-connections for
the run and restored afterwards, whatever happens (the admin connection that restores it is
opened first and kept, so that it never needs a free slot). The instances connect as a user of
their own, made for the run with SELECT, INSERT, UPDATE, DELETE on --db only: MariaDB lets
administrators past max_connections, and kv is one. The client running this needs GRANT OPTION.

Each instance gets its own Runtime API endpoint (AWS_LAMBDA_RUNTIME_API, one listening port per
instance, all served by this process's event loop) and the environment bench/lambda-emulator.py
gives a function (AWS_LAMBDA_FUNCTION_*, AWS_REGION), besides what this process inherits
(JWT_SECRET, QUOTA_*, RUST_LOG, DATABASE_ACQUIRE_TIMEOUT_SECONDS, ...); DATABASE_URL is the
run's user on --db. As Lambda does, an instance gets one invocation at a time: a caller takes an
idle instance of its function (the one idle longest, --dispatch lru, or the one idle least, mru),
queues the API Gateway event for its GET /next and waits for the POST of its answer.

Two phases, each timed from its start: --load seconds of --callers callers (split over the
functions as their instances are; more callers than instances keeps every instance busy), then
--low seconds of --low-callers callers (fewer than the connections allowed): the load drops.
Event templates are API Gateway events whose strings may hold __TOKEN__ (the --tokens, one a
line, in turn), __N__ (the invocation's number in the run) and __K__ (that number mod --keys).

Per invocation: the statusCode of the function's answer, whether a 503 carries Retry-After, the
`code` of its body, and the duration from the event's delivery (GET /next answered) to the POST
of the answer, which the pool's acquire timeout bounds; the caller's latency adds the wait for an
idle instance. A poller reads MariaDB's Threads_connected and the run user's connections every
0.5 s. Prints the report, then one `BENCH_JSON {...}` line (kind "fleet") with its checks.
"""

import argparse
import asyncio
import ctypes
import itertools
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid

PREFIX = "/2018-06-01/runtime"
FLEET_USER = "kv_fleet"
STATUS = ("Com_stmt_prepare", "Com_stmt_execute", "Connections", "Connection_errors_max_connections",
          "Max_used_connections", "Threads_connected", "Aborted_connects")
HANG_MARGIN_S = 1.0  # "no hang past the acquire timeout": every answer within the timeout plus this
RECOVERY_GRACE_S = 1.0  # "503s stop at once": none completes later than this after the drop


class Admin:
    """One mariadb client kept open for the whole run: statements in on its stdin, rows out. In a
    session of its own, so that a signal to this process group (Ctrl-C, `timeout`) leaves it to
    restore max_connections; it ends when its stdin closes, at the latest when this process dies."""

    def __init__(self, mysql):
        self.lock = threading.Lock()
        self.process = subprocess.Popen(shlex.split(mysql) + ["--batch", "--skip-column-names", "--unbuffered"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, bufsize=1, start_new_session=True)

    def query(self, sql):
        """The rows the statements print, each a list of columns."""
        with self.lock:
            try:
                self.process.stdin.write(sql.strip().rstrip(";") + ";\nSELECT '--end--';\n")
                self.process.stdin.flush()
            except OSError as error:
                raise RuntimeError(f"fleet: the admin client is gone ({error})")
            rows = []
            while (line := self.process.stdout.readline()) != "--end--\n":
                if not line:  # the client exits at the first error
                    raise RuntimeError(f"fleet: SQL failed: {self.process.stderr.read().strip()} (in: {sql.strip()})")
                rows.append(line.rstrip("\n").split("\t"))
            return rows

    def status(self):
        rows = self.query("SHOW GLOBAL STATUS WHERE Variable_name IN ("
                          + ",".join(f"'{name}'" for name in STATUS) + ")")
        return {name: int(value) for name, value in rows}

    def close(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        self.process.wait(timeout=10)


class Invocation:
    def __init__(self, instance, event, phase, started):
        self.id, self.instance, self.event, self.phase = str(uuid.uuid4()), instance, event, phase
        self.started, self.delivered, self.finished = started, None, None
        self.done = asyncio.get_running_loop().create_future()
        self.status, self.retry_after, self.code = None, False, None

    def answer(self, kind, body):
        """The function's POST of its answer (kind "response"), of its error, or "timeout"."""
        if self.done.done():
            return
        self.finished = time.perf_counter()
        if kind == "timeout":
            self.status = "timeout"
        elif kind != "response":
            self.status = f"invocation error: {body[:200]}"
        else:
            try:
                response = json.loads(body)
                self.status = response["statusCode"]
                headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
                headers.update({k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()})
                self.retry_after = "retry-after" in headers
                if self.status != 200:
                    self.code = json.loads(response.get("body") or "{}").get("code")
            except (ValueError, KeyError, AttributeError, TypeError):
                self.status = f"unparseable answer: {body[:200]}"
        self.done.set_result(None)


class Instance:
    def __init__(self, function, index):
        self.function, self.index = function, index
        self.name = f"{function.name}#{index}"
        self.events = asyncio.Queue()  # the invocation for its next GET /next (one at a time)
        self.pending = {}  # request id -> Invocation, until answered
        self.ready = asyncio.Event()  # its first GET /next: initialised
        self.spawned = self.ready_at = None
        self.process = self.server = self.port = None
        self.init_error = None


class Function:
    def __init__(self, name, count, template, binary, dispatch):
        self.name, self.count, self.binary = name, count, binary
        self.template = json.dumps(json.load(open(template)))
        self.instances = []
        self.idle = asyncio.Queue() if dispatch == "lru" else asyncio.LifoQueue()


# --- the Runtime API, one listening port per instance -------------------------------------------

async def read_body(reader, headers):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
        return body
    return await reader.readexactly(int(headers.get("content-length") or 0))


def reply(writer, status, body=b'{"status":"OK"}', headers=()):
    head = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)


async def serve(instance, reader, writer):
    try:
        while line := await reader.readline():
            method, path, _ = line.decode().split(" ", 2)
            headers = {}
            while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = header.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await read_body(reader, headers)
            parts = path[len(PREFIX):].strip("/").split("/") if path.startswith(PREFIX) else []
            if method == "GET" and parts == ["invocation", "next"]:
                if not instance.ready.is_set():
                    instance.ready_at = time.perf_counter()
                    instance.ready.set()
                invocation = await instance.events.get()
                invocation.delivered = time.perf_counter()
                reply(writer, 200, invocation.event, [
                    ("Lambda-Runtime-Aws-Request-Id", invocation.id),
                    ("Lambda-Runtime-Deadline-Ms", int(time.time() * 1000) + 30_000),
                    ("Lambda-Runtime-Invoked-Function-Arn",
                     f"arn:aws:lambda:eu-west-1:123456789012:function:{instance.function.name}"),
                    ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0")])
            elif method == "POST" and parts == ["init", "error"]:
                instance.init_error = body.decode(errors="replace")
                reply(writer, 202)
            elif method == "POST" and len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                invocation = instance.pending.pop(parts[1], None)
                if invocation:
                    invocation.answer(parts[2], body.decode(errors="replace"))
                reply(writer, 202)
            else:
                reply(writer, 404, b'{"errorMessage":"unknown path"}')
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
        pass  # the function hung up, or the run is over (a GET /next still waiting)
    finally:
        writer.close()


def die_with_parent():
    """In the child, before exec: SIGKILL when this process dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def start(instance, env, log):
    instance.server = await asyncio.start_server(lambda r, w: serve(instance, r, w), "127.0.0.1", 0)
    instance.port = instance.server.sockets[0].getsockname()[1]
    name = instance.function.name
    instance.spawned = time.perf_counter()
    instance.process = subprocess.Popen([instance.function.binary], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        preexec_fn=die_with_parent, env={
        **env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{instance.port}", "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/01/01/[$LATEST]{instance.index:032x}",
        "AWS_REGION": env.get("AWS_REGION", "eu-west-1")})


def stop(instances):
    for instance in instances:
        if instance.process and instance.process.poll() is None:
            instance.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    for instance in instances:
        if instance.process:
            try:
                instance.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait(timeout=5)
        if instance.server:
            instance.server.close()


# --- load ------------------------------------------------------------------------------------------

class Load:
    def __init__(self, args, functions):
        self.args, self.functions = args, functions
        self.tokens = itertools.cycle([t.strip() for t in open(args.tokens) if t.strip()])
        self.numbers = itertools.count()
        self.invocations = []

    def event(self, function):
        number = next(self.numbers)
        text = (function.template.replace("__TOKEN__", next(self.tokens)).replace("__N__", str(number))
                .replace("__K__", str(number % self.args.keys)))
        return text.encode()

    async def caller(self, function, phase, until):
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.args.timeout):
                    instance = await function.idle.get()
            except TimeoutError:
                break  # every instance of the function stuck or gone
            if started >= until:
                function.idle.put_nowait(instance)
                break
            invocation = Invocation(instance.name, self.event(function), phase, started)
            instance.pending[invocation.id] = invocation
            instance.events.put_nowait(invocation)
            self.invocations.append(invocation)
            # Not wait_for: on Python 3.11 it can swallow a cancellation that comes with the answer.
            await asyncio.wait([invocation.done], timeout=self.args.timeout)
            if not invocation.done.done():
                invocation.answer("timeout", "")  # a stuck instance: never dispatched to again
                continue
            if instance.process.poll() is None:
                function.idle.put_nowait(instance)
            # Let a caller already waiting for an idle instance have this one: asyncio's queues
            # let a getter that comes later take the item first, which could starve a caller.
            await asyncio.sleep(0)

    def phase(self, name, callers, seconds):
        """`callers` callers, spread over the functions as their instances are, for `seconds`."""
        total = sum(f.count for f in self.functions)
        until = time.perf_counter() + seconds
        return [asyncio.create_task(self.caller(function, name, until)) for function in self.functions
                for _ in range(max(1, round(callers * function.count / total)))]


async def watch(instances):
    """An instance that exits fails its pending invocation at once, instead of at its timeout."""
    while True:
        await asyncio.sleep(0.2)
        for instance in instances:
            if instance.process.poll() is not None and instance.pending:
                for invocation in list(instance.pending.values()):
                    invocation.answer("error", f"the process exited with {instance.process.returncode}")
                instance.pending.clear()


CONNECTED = ("SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = "
             f"'THREADS_CONNECTED'), (SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{FLEET_USER}')")


def poll(admin, samples, stopping):
    """Threads_connected and the run user's connections every 0.5 s, until `stopping` is set."""
    while not stopping.wait(0.5):
        try:
            connected, fleet = map(int, admin.query(CONNECTED)[0])
            samples.append((time.perf_counter(), connected, fleet))
        except RuntimeError:
            return


# --- the report -------------------------------------------------------------------------------

def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


def outcome(invocation):
    """"200", "503 SERVICE_UNAVAILABLE" (with Retry-After), or what else came."""
    text = str(invocation.status) + (f" {invocation.code}" if invocation.code else "")
    return text + (" without Retry-After" if invocation.status == 503 and not invocation.retry_after else "")


def summarise(args, functions, load, samples, status_before, status_after, t0, drop, end, max_connections, init):
    invocations = [i for i in load.invocations if i.finished is not None]
    durations = [i.finished - i.delivered for i in invocations if i.delivered]
    latencies = [i.finished - i.started for i in invocations]
    unavailable = [i for i in invocations if i.status == 503 and i.delivered]
    counts = {}
    for i in invocations:
        counts[outcome(i)] = counts.get(outcome(i), 0) + 1
    # One row a second, by the second the answer came in: its outcomes and the slowest, and the
    # last connection sample of that second.
    series = []
    for second in range(int(end - t0) + 1):
        these = [i for i in invocations if int(i.finished - t0) == second]
        sample = [s for s in samples if int(s[0] - t0) == second]
        these_durations = [i.finished - i.delivered for i in these if i.delivered]
        series.append({"t": second, "phase": "load" if t0 + second < drop else "low",
                       "ok": sum(i.status == 200 for i in these), "unavailable": sum(i.status == 503 for i in these),
                       "other": sum(i.status not in (200, 503) for i in these),
                       "p99_ms": ms(percentile(these_durations, 99)),
                       "max_ms": ms(max(these_durations, default=None)),
                       "connections": sample[-1][1] if sample else None,
                       "fleet_connections": sample[-1][2] if sample else None})
    # Which instances answered what: a pool keeps its connection, so an instance that got one
    # answers 200 from then on, and one refused keeps being refused while the others hold theirs.
    answered = {}
    for i in invocations:
        answered.setdefault(i.instance, set()).add(i.status)
    instances = {"only_200": sum(a == {200} for a in answered.values()),
                 "only_503": sum(a == {503} for a in answered.values()),
                 "both": sum(a == {200, 503} for a in answered.values())}
    after_drop = [i for i in unavailable if i.finished >= drop]
    late = [i for i in after_drop if i.finished >= drop + RECOVERY_GRACE_S]
    delta = {k: status_after[k] - status_before[k] for k in
             ("Com_stmt_prepare", "Com_stmt_execute", "Connections", "Connection_errors_max_connections",
              "Aborted_connects")}
    limit = args.acquire_timeout + HANG_MARGIN_S
    others = status_before["Threads_connected"]  # this script's own client among them
    n = sum(f.count for f in functions)
    checks = [
        {"check": "answers", "ok": set(counts) <= {"200", "503 SERVICE_UNAVAILABLE"},
         "detail": f"only 200 and 503 with Retry-After: {counts}"},
        {"check": "no hang", "ok": bool(durations) and max(durations) <= limit,
         "detail": f"slowest answer {ms(max(durations, default=None))} ms, slowest 503 "
                   f"{ms(max((i.finished - i.delivered for i in unavailable), default=None))} ms, within the "
                   f"acquire timeout {args.acquire_timeout:g} s + {HANG_MARGIN_S:g} s"},
        {"check": "statements", "ok": delta["Com_stmt_prepare"] == 0 and delta["Com_stmt_execute"] == 0,
         "detail": f"Com_stmt_prepare +{delta['Com_stmt_prepare']}, Com_stmt_execute +{delta['Com_stmt_execute']} "
                   "(server-wide: other clients count too)"},
    ]
    if args.max_connections > n + others:
        checks.append({"check": "room for all", "ok": not unavailable,
                       "detail": f"max_connections {args.max_connections} > {n} instances + {others} other "
                                 f"connections: {len(unavailable)} 503s"})
    elif os.environ.get("DATABASE_MAX_IDLE_CONNECTIONS") != "0":
        # Pools that keep their connection hold it while the instance lives: the instances
        # refused under load stay refused after the drop. Reported, not a target: the run with
        # DATABASE_MAX_IDLE_CONNECTIONS=0 is the one that must recover.
        pass
    else:
        checks.append({"check": "recovery", "ok": bool(unavailable) and not late,
                       "detail": f"{len(after_drop)} 503s answered after the drop, {len(late)} of them "
                                 f"{RECOVERY_GRACE_S:g} s or more after it" + (
                                     f" (the last at +{late[-1].finished - drop:.1f} s)" if late else "")
                                 + ("" if unavailable else "; no 503 under load at all: max_connections not reached")})
    return {
        "kind": "fleet", "instances": {f.name: f.count for f in functions}, "max_connections": args.max_connections,
        "max_idle_connections": os.environ.get("DATABASE_MAX_IDLE_CONNECTIONS") or "default (1)",
        "max_connections_before": max_connections, "dispatch": args.dispatch,
        "callers": args.callers, "low_callers": args.low_callers, "load_s": args.load, "low_s": args.low,
        "acquire_timeout_s": args.acquire_timeout, "init_ms": {"median": ms(percentile(init, 50)), "max": ms(max(init))},
        "invocations": len(invocations), "counts": counts, "instances_answering": instances,
        "by_phase": {p: {o: sum(1 for i in invocations if i.phase == p and outcome(i) == o) for o in counts}
                     for p in ("load", "low")},
        "duration_ms": {"p50": ms(percentile(durations, 50)), "p99": ms(percentile(durations, 99)),
                        "max": ms(max(durations, default=None))},
        "latency_ms": {"p50": ms(percentile(latencies, 50)), "p99": ms(percentile(latencies, 99)),
                       "max": ms(max(latencies, default=None))},
        "unavailable_ms": {"p50": ms(percentile([i.finished - i.delivered for i in unavailable], 50)),
                           "max": ms(max((i.finished - i.delivered for i in unavailable), default=None))},
        "rate": {"load": round(sum(i.phase == "load" for i in invocations) / args.load, 1),
                 "low": round(sum(i.phase == "low" for i in invocations) / args.low, 1)},
        "after_drop": {"unavailable": len(after_drop), "late": len(late)},
        "status_delta": delta,
        "max_used_connections": [status_before["Max_used_connections"], status_after["Max_used_connections"]],
        "connections_sampled_max": max((s[1] for s in samples), default=None),
        "fleet_connections_sampled_max": max((s[2] for s in samples), default=None),
        "other_connections_before": others,
        "series": series, "checks": checks,
    }


def print_report(r):
    n = sum(r["instances"].values())
    print(f"\nfleet: {n} instances ({', '.join(f'{k} x{v}' for k, v in r['instances'].items())}), "
          f"max_connections {r['max_connections']} (was {r['max_connections_before']}), DATABASE_MAX_IDLE_CONNECTIONS "
          f"{r['max_idle_connections']}, dispatch {r['dispatch']}; "
          f"{r['load_s']} s of {r['callers']} callers, then {r['low_s']} s of {r['low_callers']}")
    print(f"  init (spawn -> first GET /next): median {r['init_ms']['median']} ms, max {r['init_ms']['max']} ms")
    print(f"  {r['invocations']} invocations ({r['rate']['load']}/s under load, {r['rate']['low']}/s after): "
          f"{r['counts']}; by phase {r['by_phase']}")
    a = r["instances_answering"]
    print(f"  instances that answered only 200: {a['only_200']}, only 503: {a['only_503']}, both: {a['both']}")
    print(f"  duration (event delivered -> answer posted): p50 {r['duration_ms']['p50']} ms, p99 "
          f"{r['duration_ms']['p99']} ms, max {r['duration_ms']['max']} ms; 503s: p50 {r['unavailable_ms']['p50']} ms, "
          f"max {r['unavailable_ms']['max']} ms")
    print(f"  caller latency (with the wait for an idle instance): p50 {r['latency_ms']['p50']} ms, "
          f"p99 {r['latency_ms']['p99']} ms, max {r['latency_ms']['max']} ms")
    print(f"  MariaDB: {r['status_delta']} (deltas, server-wide); Max_used_connections {r['max_used_connections'][0]} -> "
          f"{r['max_used_connections'][1]} (since the server started); sampled every 0.5 s: at most "
          f"{r['connections_sampled_max']} connections, {r['fleet_connections_sampled_max']} of them the fleet's "
          f"({r['other_connections_before']} others before the run)")
    print("  per second (by answer): t phase    200   503 other  p99 ms  max ms  connections (fleet's)")
    for s in r["series"]:
        print(f"    {s['t']:>3} {s['phase']:<5} {s['ok']:>6} {s['unavailable']:>5} {s['other']:>5} "
              f"{s['p99_ms'] if s['p99_ms'] is not None else '-':>7} {s['max_ms'] if s['max_ms'] is not None else '-':>7}"
              f"  {s['connections']} ({s['fleet_connections']})")
    for c in r["checks"]:
        print(f"  {c['check']}: {'PASS' if c['ok'] else 'MISSED'}: {c['detail']}")


# --- main --------------------------------------------------------------------------------------------

async def run(args, admin):
    # SIGTERM (run.sh's cleanup, timeout) and Ctrl-C unwind through the finally below.
    task = asyncio.current_task()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    functions = []
    for spec in args.function:
        name, _, rest = spec.partition("=")
        count, _, template = rest.partition(":")
        functions.append(Function(name, int(count), template, os.path.join(args.bin_dir, name), args.dispatch))
    status_before = admin.status()
    max_connections = int(admin.query("SELECT @@max_connections")[0][0])
    password = secrets.token_hex(16)
    host, port = args.host_port.rsplit(":", 1)
    env = {**os.environ, "DATABASE_URL": f"mysql://{FLEET_USER}:{password}@{host}:{port}/{args.db}"}
    env.pop("DATABASE_MAX_CONNECTIONS", None)  # Lambda's default: a pool of one
    log = open(args.log, "a") if args.log else subprocess.DEVNULL
    instances, samples, stopping = [], [], threading.Event()
    try:
        admin.query(f"""CREATE OR REPLACE USER '{FLEET_USER}'@'127.0.0.1' IDENTIFIED BY '{password}';
            GRANT SELECT, INSERT, UPDATE, DELETE ON `{args.db}`.* TO '{FLEET_USER}'@'127.0.0.1';
            SET GLOBAL max_connections = {args.max_connections}""")
        for function in functions:
            for index in range(function.count):
                instance = Instance(function, index)
                function.instances.append(instance)
                instances.append(instance)
                await start(instance, env, log)
        try:
            await asyncio.wait_for(asyncio.gather(*(i.ready.wait() for i in instances)), 60)
        except TimeoutError:
            raise SystemExit(f"fleet: {sum(not i.ready.is_set() for i in instances)} instances did not ask for an event "
                             f"within 60 s; init errors: {[i.init_error for i in instances if i.init_error][:3]}")
        for instance in instances:
            instance.function.idle.put_nowait(instance)
        watcher = asyncio.create_task(watch(instances))
        poller = threading.Thread(target=poll, args=(admin, samples, stopping), daemon=True)
        poller.start()
        load = Load(args, functions)
        t0 = time.perf_counter()
        tasks = load.phase("load", args.callers, args.load)
        await asyncio.sleep(args.load)
        drop = time.perf_counter()
        tasks += load.phase("low", args.low_callers, args.low)
        await asyncio.gather(*tasks)
        end = time.perf_counter()
        watcher.cancel()
    finally:
        stopping.set()
        stop(instances)
        restore = (f"SET GLOBAL max_connections = {max_connections}; "
                   f"DROP USER IF EXISTS '{FLEET_USER}'@'127.0.0.1'")
        try:
            admin.query(restore)
        except RuntimeError:  # the kept client died: a new one (the instances are gone, so there is room)
            subprocess.run(shlex.split(args.mysql) + ["-e", restore], timeout=30, check=True)
    status_after = admin.status()
    init = [i.ready_at - i.spawned for i in instances]
    return summarise(args, functions, load, samples, status_before, status_after, t0, drop, end,
                     max_connections, init)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--function", action="append", required=True, metavar="NAME=COUNT:EVENT_TEMPLATE")
    parser.add_argument("--bin-dir", required=True, help="where the function binaries are")
    parser.add_argument("--tokens", required=True, help="access tokens, one a line, for __TOKEN__")
    parser.add_argument("--keys", type=int, default=1000, help="__K__ is the invocation's number mod this")
    parser.add_argument("--mysql", required=True, help="an administrator's client command line (GRANT OPTION)")
    parser.add_argument("--host-port", default="127.0.0.1:33061", help="MariaDB, for the instances' DATABASE_URL")
    parser.add_argument("--db", default="kv_bench")
    parser.add_argument("--max-connections", type=int, required=True)
    parser.add_argument("--callers", type=int, help="under load; default: twice the instances")
    parser.add_argument("--low-callers", type=int, default=8, help="after the drop")
    parser.add_argument("--load", type=float, default=20, help="seconds")
    parser.add_argument("--low", type=float, default=10, help="seconds")
    parser.add_argument("--dispatch", choices=["lru", "mru"], default="lru")
    parser.add_argument("--timeout", type=float, default=30, help="an invocation's limit, seconds (Lambda's timeout)")
    parser.add_argument("--log", help="append the functions' output here")
    args = parser.parse_args()
    args.acquire_timeout = float(os.environ.get("DATABASE_ACQUIRE_TIMEOUT_SECONDS") or 3)
    n = sum(int(spec.partition("=")[2].partition(":")[0]) for spec in args.function)
    args.callers = args.callers or 2 * n
    admin = Admin(args.mysql)
    try:
        result = asyncio.run(run(args, admin))
    except (asyncio.CancelledError, KeyboardInterrupt):
        return "fleet: interrupted (max_connections restored, the run's user dropped)"
    finally:
        admin.close()
    print_report(result)
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
