#!/usr/bin/env python3
"""Adds CRM writes that are pending but not due (next attempt in 2099) to a casebridge database,
as a CRM that keeps refusing would leave them: 50,000 lanes and customer keys of their own.

    bench/hold_writes.py DATA_DIR COUNT          # SQLite: DATA_DIR/casebridge.db
    bench/hold_writes.py postgres://... COUNT    # PostgreSQL (through psql)

The database must exist and be migrated (run `casebridge loadgen --sessions 10` on it once),
and casebridge must not be running on it.
"""

import os
import sqlite3
import subprocess
import sys

OP = '{"crm":{"set_status":{"record":{"crm":"R-held"},"status":"open","at":"2026-12-01T00:00:00Z"}}}'
DUE = "2099-01-01T00:00:00.000000Z"
CREATED = "2026-12-01T00:00:00.000000Z"
LANES = 50_000


def sqlite(path: str, n: int) -> None:
    c = sqlite3.connect(os.path.join(path, "casebridge.db"))
    rows = (
        (f"held-{i}", f"lane:held-{i % LANES}", f"held-s-{i}", OP, DUE, CREATED)
        for i in range(n)
    )
    c.executemany(
        "INSERT INTO outbox (key, lane, session_id, op, next_attempt_at, created_at) VALUES (?,?,?,?,?,?)",
        rows,
    )
    c.execute(
        f"INSERT INTO outbox_keys (key, outbox_id) SELECT 'phone:+9999' || (id % {LANES}), id "
        "FROM outbox WHERE key LIKE 'held-%'"
    )
    c.commit()


def postgres(url: str, n: int) -> None:
    sql = f"""
INSERT INTO outbox (key, lane, session_id, op, next_attempt_at, created_at)
SELECT 'held-' || i, 'lane:held-' || (i % {LANES}), 'held-s-' || i, '{OP}', '{DUE}', '{CREATED}'
FROM generate_series(0, {n - 1}) AS i;
INSERT INTO outbox_keys (key, outbox_id) SELECT 'phone:+9999' || (id % {LANES}), id FROM outbox WHERE key LIKE 'held-%';
ANALYZE;
"""
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    target, n = sys.argv[1], int(sys.argv[2])
    if target.startswith("postgres"):
        postgres(target, n)
    else:
        sqlite(target, n)
    print(f"{n} held-back writes added")


if __name__ == "__main__":
    main()
