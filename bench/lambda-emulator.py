#!/usr/bin/env python3
"""A small AWS Lambda Runtime API emulator on loopback, and a cold/warm-start meter on top.

The emulator implements the subset of the Runtime API that `lambda_runtime` uses:
  GET  /2018-06-01/runtime/invocation/next            next event (long poll), with the headers
       Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn, -Trace-Id
  POST /2018-06-01/runtime/invocation/{id}/response   the function's answer (recorded, timed)
  POST /2018-06-01/runtime/invocation/{id}/error      an invocation failure (recorded)
  POST /2018-06-01/runtime/init/error                 an initialisation failure (recorded)

`measure` mode spawns a function binary as Lambda would (configuration from the environment,
AWS_LAMBDA_RUNTIME_API pointing here) with one API Gateway HTTP API (v2) event already queued,
and times, from just before the spawn:
  init   = spawn -> the function's first GET /next (runtime ready, before any DB work)
  first  = spawn -> the first response POST (the cold start the target is about)
  split  = first GET /next -> its response POST (the first invocation, which on MySQL opens
           the pool's first connection: TCP connect + handshake + auth, then the query)
It repeats that --cold times, then, in the last process, runs --warm more invocations and
reads MariaDB's processlist before and after them to show the warm invocations reuse the
connection. Prints one `BENCH_JSON {...}` line. Every wait is bounded.

  lambda-emulator.py serve --port 9001                    just the emulator, events from stdin
  lambda-emulator.py measure --binary PATH --event FILE --name NAME [--cold 10] [--warm 50]
      [--mysql "mariadb --no-defaults -h... -P... -u... -p..."] [--db kv_bench]
      (the function's own environment, JWT_SECRET and DATABASE_URL, is inherited)
"""

import argparse
import http.server
import json
import os
import queue
import shlex
import signal
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import uuid

PREFIX = "/2018-06-01/runtime"
NEXT_POLL_SECONDS = 30  # a GET /next with nothing queued answers 500 after this (bounded)


class Emulator:
    """The Runtime API's state: queued events and what happened to each invocation."""

    def __init__(self, function_name):
        self.function_name = function_name
        self.events = queue.Queue()
        self.lock = threading.Lock()
        self.invocations = {}  # request id -> dict of times and outcome
        self.next_calls = []  # perf_counter of every GET /next
        self.init_errors = []
        self.answered = threading.Condition(self.lock)

    def enqueue(self, event):
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event))
        return request_id

    def record(self, request_id, **fields):
        with self.lock:
            self.invocations.setdefault(request_id, {}).update(fields)
            self.answered.notify_all()

    def wait_answer(self, request_id, timeout):
        """The invocation's record once it has a response or an error, else None."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                record = self.invocations.get(request_id, {})
                if "responded" in record or "error" in record or self.init_errors:
                    return dict(record)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.answered.wait(left)


def make_handler(emulator):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the runtime client expects

        def log_message(self, *args):
            pass

        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                return self.rfile.read(length)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return b""

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next":
                return self.reply(404, b'{"errorMessage":"unknown path"}')
            now = time.perf_counter()
            with emulator.lock:
                emulator.next_calls.append(now)
            try:
                request_id, event = emulator.events.get(timeout=NEXT_POLL_SECONDS)
            except queue.Empty:
                return self.reply(500, b'{"errorMessage":"no event queued"}')
            body = json.dumps(event).encode()
            emulator.record(request_id, next_at=time.perf_counter())
            deadline_ms = int(time.time() * 1000) + 30_000
            arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{emulator.function_name}"
            self.reply(200, body, [
                ("Lambda-Runtime-Aws-Request-Id", request_id),
                ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
                ("Lambda-Runtime-Invoked-Function-Arn", arn),
                ("Lambda-Runtime-Trace-Id",
                 f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"),
            ])

        def do_POST(self):
            now = time.perf_counter()
            body = self.read_body()
            parts = self.path[len(PREFIX):].strip("/").split("/")
            if parts == ["init", "error"]:
                with emulator.lock:
                    emulator.init_errors.append(body.decode(errors="replace"))
                    emulator.answered.notify_all()
                return self.reply(202, b'{"status":"OK"}')
            if len(parts) == 3 and parts[0] == "invocation" and parts[2] == "response":
                emulator.record(parts[1], responded=now, body=body.decode(errors="replace"))
                return self.reply(202, b'{"status":"OK"}')
            if len(parts) == 3 and parts[0] == "invocation" and parts[2] == "error":
                emulator.record(parts[1], error=body.decode(errors="replace"), responded_error=now)
                return self.reply(202, b'{"status":"OK"}')
            return self.reply(404, b'{"errorMessage":"unknown path"}')

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_server(emulator, port=0):
    server = Server(("127.0.0.1", port), make_handler(emulator))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def lambda_env(name, port):
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_REGION": env.get("AWS_REGION", "eu-west-1"),
        "RUST_LOG": env.get("RUST_LOG", "warn"),
    })
    return env


def processlist_ids(mysql, db):
    """Connection ids MariaDB has open to `db` (the client's own connection has no database)."""
    query = ("SELECT GROUP_CONCAT(ID ORDER BY ID) FROM information_schema.PROCESSLIST "
             f"WHERE DB = '{db}'; SHOW GLOBAL STATUS LIKE 'Connections';")
    out = subprocess.run(shlex.split(mysql) + ["--batch", "--skip-column-names", "-e", query],
                         capture_output=True, text=True, timeout=10, check=True).stdout.split("\n")
    ids = [] if out[0] in ("", "NULL") else out[0].split(",")
    return ids, int(out[1].split()[-1])


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def status_of(record):
    """The statusCode of the function's API Gateway answer, or a description of the failure."""
    if record is None:
        return "timeout"
    if "error" in record:
        return "error: " + record["error"][:200]
    if "responded" not in record:
        return "no response"
    try:
        return json.loads(record["body"]).get("statusCode")
    except (ValueError, AttributeError):
        return "unparseable: " + record.get("body", "")[:200]


def ms(seconds):
    return round(seconds * 1000, 2)


def measure(args):
    with open(args.event) as f:
        event = json.load(f)
    cold = []
    warm = []
    reuse = None
    log = open(args.log, "a") if args.log else subprocess.DEVNULL
    for attempt in range(args.cold):
        # A fresh emulator (and port) per cold start: a killed process's pending GET /next
        # can then never take the event meant for the next process.
        emulator = Emulator(args.name)
        server = start_server(emulator)
        env = lambda_env(args.name, server.server_address[1])
        request_id = emulator.enqueue(event)
        spawned = time.perf_counter()
        process = subprocess.Popen([args.binary], env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=log)
        try:
            record = emulator.wait_answer(request_id, timeout=args.timeout)
            status = status_of(record)
            if emulator.init_errors or status != 200 or "next_at" not in record:
                raise SystemExit(f"{args.name}: cold start {attempt + 1} failed: {status}; "
                                 f"init errors: {emulator.init_errors}")
            with emulator.lock:
                first_next = emulator.next_calls[0]
            cold.append({
                "first_ms": ms(record["responded"] - spawned),
                "init_ms": ms(first_next - spawned),
                "invoke_ms": ms(record["responded"] - record["next_at"]),
            })
            if attempt == args.cold - 1 and args.warm:
                time.sleep(0.5)  # let the connections of the killed processes close
                before = processlist_ids(args.mysql, args.db) if args.mysql else None
                for _ in range(args.warm):
                    rid = emulator.enqueue(event)
                    r = emulator.wait_answer(rid, timeout=args.timeout)
                    if status_of(r) != 200:
                        raise SystemExit(f"{args.name}: warm invocation failed: {status_of(r)}")
                    warm.append(r["responded"] - r["next_at"])
                after = processlist_ids(args.mysql, args.db) if args.mysql else None
                if before:
                    opened = [i for i in after[0] if i not in before[0]]
                    reuse = {
                        "ids_before": before[0], "ids_after": after[0],
                        "opened_during_warm": len(opened),
                        # Reused: the connection of the first invocation is still the
                        # function's, and the warm invocations opened none beyond the pool's
                        # size (2 on Lambda), not one per invocation.
                        "reused": set(before[0]) <= set(after[0]) and len(after[0]) <= 2,
                        "global_connections_delta": after[1] - before[1],
                    }
        finally:
            stop(process)
            server.shutdown()
            server.server_close()

    def summary(values):
        values = sorted(values)
        return {"min": values[0], "median": round(statistics.median(values), 2),
                "max": values[-1]}

    result = {
        "function": args.name,
        "cold_starts": len(cold),
        "first_ms": summary([c["first_ms"] for c in cold]),
        "init_ms": summary([c["init_ms"] for c in cold]),
        "first_invoke_ms": summary([c["invoke_ms"] for c in cold]),
        "warm_invocations": len(warm),
    }
    if warm:
        result["warm_invoke_ms"] = summary([ms(w) for w in warm])
    if reuse is not None:
        result["connection_reuse"] = reuse
    print("BENCH_JSON " + json.dumps(result), flush=True)


def serve(args):
    """The emulator alone: one event per line of stdin is queued; answers are printed."""
    emulator = Emulator(args.name)
    server = start_server(emulator, args.port)
    print(f"Runtime API on 127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        for line in sys.stdin:
            if line.strip():
                rid = emulator.enqueue(json.loads(line))
                print(json.dumps({"request_id": rid,
                                  "record": emulator.wait_answer(rid, timeout=args.timeout)}),
                      flush=True)
    finally:
        server.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--binary", required=True)
    m.add_argument("--event", required=True, help="API Gateway event JSON file")
    m.add_argument("--name", required=True, help="AWS_LAMBDA_FUNCTION_NAME")
    m.add_argument("--cold", type=int, default=10)
    m.add_argument("--warm", type=int, default=50)
    m.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer")
    m.add_argument("--mysql", help="client command for the processlist check")
    m.add_argument("--db", default="kv_bench")
    m.add_argument("--log", help="append the function's output here")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=9001)
    s.add_argument("--name", default="emulated-function")
    s.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    measure(args) if args.mode == "measure" else serve(args)


if __name__ == "__main__":
    main()
