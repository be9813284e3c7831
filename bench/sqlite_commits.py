#!/usr/bin/env python3
"""This machine against quality.md's reference for SQLite: durable (WAL, synchronous=FULL)
commits of one 300-byte row, and of 16 rows, on a file in the given folder.

    bench/sqlite_commits.py [FOLDER]      # default: the current folder

quality.md's reference machine: about 5,500 single-row durable commits/s and about 74,000
rows/s when 16 rows share a commit.
"""

import os
import sqlite3
import sys
import time


def main() -> None:
    path = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "sqlite_commits.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    body = "x" * 300
    for rows, commits in ((1, 3000), (16, 1500)):
        started = time.perf_counter()
        for _ in range(commits):
            c.execute("BEGIN")
            for _ in range(rows):
                c.execute("INSERT INTO t (body) VALUES (?)", (body,))
            c.execute("COMMIT")
        took = time.perf_counter() - started
        print(f"{rows:>2} row(s) a durable commit: {commits / took:,.0f} commits/s, {commits * rows / took:,.0f} rows/s")
    c.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


if __name__ == "__main__":
    main()
