#!/usr/bin/env python3
"""Where SQLite's writer spends its bytes: runs `casebridge loadgen` on a data folder of its
own, copies the WAL file a few times during the run, and counts the frames (one 4 KB page
each) of every table and index in those copies, with frames per commit.

    bench/wal_frames.py [--bin target/release/casebridge] [--sessions 5000] [--traffic sessions]

Every commit writes each page it changed once, whatever share of the page changed; fewer
frames a commit is less to write and less for an acknowledged write's sync to carry. The
copies hold the frames since the WAL last restarted (a checkpoint resets it every ~1,000
frames), so they are samples of the run, not all of it. Needs Python's sqlite3 with the
dbstat table (Debian's has it).
"""

import argparse
import collections
import os
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import time


def frames(path: str):
    """(page number, is a commit frame) of every frame in a WAL file, stale ones included."""
    b = open(path, "rb").read()
    if len(b) < 32:
        return
    page = struct.unpack(">I", b[8:12])[0]
    off = 32
    while off + 24 + page <= len(b):
        pgno, size = struct.unpack(">II", b[off : off + 8])
        if pgno:
            yield pgno, size != 0
        off += 24 + page


def server_io(data: str) -> dict:
    """The /proc/PID/io counters of the `casebridge serve` on `data`, if it runs."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            if b"serve" in cmd and data.encode() in cmd:
                return dict(l.split(": ") for l in open(f"/proc/{pid}/io").read().split("\n") if l)
        except OSError:
            continue
    return {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/casebridge")
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--traffic", default="sessions")
    ap.add_argument("--samples", type=int, default=6)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="casebridge-wal-")
    data = os.path.join(work, "data")
    args = [a.bin, "loadgen", "--data-dir", data, "--traffic", a.traffic]
    args += ["--sessions", str(a.sessions)] if a.traffic == "sessions" else ["--duration", "8"]
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wal = os.path.join(data, "casebridge.db-wal")
    copies = []
    deadline = time.time() + 60
    while not os.path.exists(wal) and time.time() < deadline:
        time.sleep(0.1)
    io = {}

    def watch(secs: float) -> None:
        # The server's counters are read until it exits, also while sampling (a fast run
        # ends before the samples do).
        nonlocal io
        end = time.time() + secs
        while run.poll() is None and time.time() < end:
            io = server_io(data) or io
            time.sleep(0.1)

    watch(2)  # past start-up's migrations
    for i in range(a.samples):
        if run.poll() is not None:
            break
        dst = os.path.join(work, f"wal{i}")
        shutil.copyfile(wal, dst)
        copies.append(dst)
        watch(0.6)
    watch(float("inf"))
    db = os.path.join(work, "db")
    shutil.copyfile(os.path.join(data, "casebridge.db"), db)
    out = run.stdout.read() if run.stdout else ""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    owner = dict((p, n) for n, p in c.execute("SELECT name, pageno FROM dbstat"))
    owner[1] = "page 1 (file header and schema)"
    count = collections.Counter()
    commits = total = 0
    for path in copies:
        for pgno, commit in frames(path):
            count[owner.get(pgno, "(free or new pages)")] += 1
            total += 1
            commits += commit
    print(next((l for l in out.splitlines() if l.startswith("end to end")), out.strip()[-200:]))
    if io and a.traffic == "sessions":
        print(f"the server's writes reaching the disk: {int(io['write_bytes']) / a.sessions / 1024:.0f} KB a session")
    print(f"{total} frames in {len(copies)} copies, {commits} commits, {total / max(commits, 1):.1f} frames a commit")
    for name, n in count.most_common(30):
        print(f"{n:7d} {100 * n / max(total, 1):5.1f}%  {name}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
