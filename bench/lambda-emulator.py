#!/usr/bin/env python3
"""Cold and warm starts of a Lambda function binary under a Runtime API emulator on loopback.

    lambda-emulator.py --binary PATH --event FILE --name NAME [--cold 10] [--warm 50]
        [--mysql "mariadb --no-defaults -h... -P... -u... -p..." --db kv_bench] [--log FILE]

The emulator serves the part of the Runtime API that `lambda_runtime` uses: GET
/2018-06-01/runtime/invocation/next (with the Lambda-Runtime-* headers), POST
.../invocation/{id}/response and .../{id}/error, and POST .../init/error. --cold times the
binary spawns as Lambda would (configuration from the inherited environment, plus
AWS_LAMBDA_RUNTIME_API and the AWS_LAMBDA_FUNCTION_* variables), one API Gateway event queued:
  first = spawn -> the first response POST (the cold start the target is about)
  init  = spawn -> the first GET /next (runtime ready, before any database work)
  split = that GET /next -> its response (the first invocation: on MySQL, the pool's first
          connection, TCP + handshake + auth, then the query)
The last process then answers --warm more invocations; with --mysql, MariaDB's processlist
before and after them shows whether they reuse its connection. Prints one `BENCH_JSON {...}`
line; every wait is bounded.
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
import threading
import time
import uuid

PREFIX = "/2018-06-01/runtime"


class Emulator(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, name):
        self.name, self.events, self.next_calls, self.init_errors = name, queue.Queue(), [], []
        self.invocations, self.changed = {}, threading.Condition()
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def record(self, request_id, **fields):
        with self.changed:
            self.invocations.setdefault(request_id, {}).update(fields)
            self.changed.notify_all()

    def invoke(self, event, timeout):
        """Queues the event; the invocation's record once answered, else None."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event))
        deadline = time.monotonic() + timeout
        with self.changed:
            while time.monotonic() < deadline:
                record = self.invocations.get(request_id, {})
                if "responded" in record or "error" in record or self.init_errors:
                    return record
                self.changed.wait(deadline - time.monotonic())
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the runtime client expects

    def log_message(self, *args):
        pass

    def reply(self, status, body=b'{"status":"OK"}', headers=()):
        self.send_response(status)
        for name, value in [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        emulator = self.server
        if self.path != f"{PREFIX}/invocation/next":
            return self.reply(404, b'{"errorMessage":"unknown path"}')
        emulator.next_calls.append(time.perf_counter())
        try:
            request_id, event = emulator.events.get(timeout=30)
        except queue.Empty:
            return self.reply(500, b'{"errorMessage":"no event queued"}')
        emulator.record(request_id, next_at=time.perf_counter())
        self.reply(200, json.dumps(event).encode(), [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000)),
            ("Lambda-Runtime-Invoked-Function-Arn", f"arn:aws:lambda:eu-west-1:123456789012:function:{emulator.name}"),
            ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"),
        ])

    def do_POST(self):
        now, emulator = time.perf_counter(), self.server
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = self.path[len(PREFIX):].strip("/").split("/")
        if parts == ["init", "error"]:
            with emulator.changed:
                emulator.init_errors.append(body.decode(errors="replace"))
                emulator.changed.notify_all()
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            field = "responded" if parts[2] == "response" else "error"
            emulator.record(parts[1], **{field: now, "body": body.decode(errors="replace")})
        else:
            return self.reply(404, b'{"errorMessage":"unknown path"}')
        self.reply(202)


def status_of(record):
    """The statusCode of the function's API Gateway answer, or what went wrong."""
    if record is None:
        return "timeout"
    if "responded" not in record:
        return "error: " + record.get("body", "")[:200]
    try:
        return json.loads(record["body"]).get("statusCode")
    except (ValueError, AttributeError):
        return "unparseable: " + record["body"][:200]


def connections(args):
    """MariaDB's connection ids to the database, and its Connections counter."""
    query = (f"SELECT GROUP_CONCAT(ID ORDER BY ID) FROM information_schema.PROCESSLIST WHERE DB = '{args.db}';"
             " SHOW GLOBAL STATUS LIKE 'Connections';")
    out = subprocess.run(shlex.split(args.mysql) + ["--batch", "--skip-column-names", "-e", query],
                         capture_output=True, text=True, timeout=10, check=True).stdout.split("\n")
    return ([] if out[0] in ("", "NULL") else out[0].split(",")), int(out[1].split()[-1])


def measure(args):
    event = json.load(open(args.event))
    log = open(args.log, "a") if args.log else subprocess.DEVNULL
    cold, warm, reuse = [], [], None
    for attempt in range(args.cold):
        # A fresh emulator (and port) per process: a killed process's pending GET /next can
        # never take the event meant for the next one.
        emulator = Emulator(args.name)
        env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{emulator.server_address[1]}",
               "AWS_LAMBDA_FUNCTION_NAME": args.name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
               "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{args.name}",
               "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
               "AWS_REGION": os.environ.get("AWS_REGION", "eu-west-1")}
        spawned = time.perf_counter()
        process = subprocess.Popen([args.binary], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            record = emulator.invoke(event, args.timeout)
            if status_of(record) != 200 or emulator.init_errors:
                raise SystemExit(f"{args.name}: cold start {attempt + 1}: {status_of(record)} {emulator.init_errors}")
            cold.append({"first": record["responded"] - spawned, "init": emulator.next_calls[0] - spawned,
                         "invoke": record["responded"] - record["next_at"]})
            if attempt == args.cold - 1 and args.warm:
                time.sleep(0.5)  # let the connections of the killed processes close
                before = connections(args) if args.mysql else None
                for _ in range(args.warm):
                    record = emulator.invoke(event, args.timeout)
                    if status_of(record) != 200:
                        raise SystemExit(f"{args.name}: warm invocation: {status_of(record)}")
                    warm.append(record["responded"] - record["next_at"])
                if before:
                    after = connections(args)
                    # Reused: the first invocation's connection is still there, and the warm
                    # ones opened none beyond the pool's size (2 on Lambda).
                    reuse = {"ids_before": before[0], "ids_after": after[0],
                             "opened_during_warm": len(set(after[0]) - set(before[0])),
                             "reused": set(before[0]) <= set(after[0]) and len(after[0]) <= 2,
                             "global_connections_delta": after[1] - before[1]}
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            emulator.shutdown()
            emulator.server_close()

    def summary(seconds):
        ms = sorted(round(s * 1000, 2) for s in seconds)
        return {"min": ms[0], "median": round(statistics.median(ms), 2), "max": ms[-1]}

    result = {"function": args.name, "cold_starts": len(cold), "warm_invocations": len(warm),
              "first_ms": summary([c["first"] for c in cold]), "init_ms": summary([c["init"] for c in cold]),
              "first_invoke_ms": summary([c["invoke"] for c in cold])}
    if warm:
        result["warm_invoke_ms"] = summary(warm)
    if reuse:
        result["connection_reuse"] = reuse
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--event", required=True, help="an API Gateway event (JSON file)")
    parser.add_argument("--name", required=True, help="AWS_LAMBDA_FUNCTION_NAME")
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer")
    parser.add_argument("--mysql", help="client command line, for the processlist")
    parser.add_argument("--db", default="kv_bench")
    parser.add_argument("--log", help="append the function's output here")
    measure(parser.parse_args())
