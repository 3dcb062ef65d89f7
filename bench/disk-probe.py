#!/usr/bin/env python3
"""Measures the disk's own latency while bench/run.sh runs: a synced write every 50 ms.

Usage: disk-probe.py FILE LOG [--interval SECONDS]

Each write overwrites the same 4 KiB block of FILE with O_DIRECT and O_DSYNC, the way
InnoDB writes its redo log on commit (innodb_flush_method=O_DIRECT), so it waits for the
device exactly as a commit does. FILE must be on the filesystem of MariaDB's data directory.
LOG gets one line per write, "<unix time at start> <milliseconds>", until SIGTERM.

At 20 writes/s the probe adds under 1 % to the about 3,000 device flushes/s of a write phase.
A write phase whose p99 misses while this probe saw a write of 100 ms or more missed because
the disk stalled: each commit waits for one such write, and all of them wait together.
"""

import argparse
import mmap
import os
import signal
import sys
import time

BLOCK = 4096


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("log")
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    flags = os.O_WRONLY | os.O_CREAT | os.O_DSYNC
    try:
        fd = os.open(args.file, flags | os.O_DIRECT, 0o600)
    except OSError:  # tmpfs and some others refuse O_DIRECT: synced writes still tell
        fd = os.open(args.file, flags, 0o600)
    buffer = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT requires
    buffer.write(os.urandom(BLOCK))
    os.pwrite(fd, buffer, 0)  # allocate the block: every later write overwrites it in place

    with open(args.log, "w") as log:
        while True:
            started_at = time.time()
            start = time.perf_counter()
            os.pwrite(fd, buffer, 0)
            elapsed = time.perf_counter() - start
            log.write(f"{started_at:.3f} {elapsed * 1000:.2f}\n")
            log.flush()
            time.sleep(max(0.0, args.interval - elapsed))


if __name__ == "__main__":
    main()
