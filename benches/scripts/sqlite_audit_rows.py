#!/usr/bin/env python3
"""What an audit row costs SQLite, without the service around it.

Commits of 32 token-shaped rows (random keys, a fingerprint index), with
or without 32 audit-shaped rows (the `audit_events` columns that matter
for size, with its key and some of its four indexes), in WAL mode with
`synchronous = FULL`, as the service runs SQLite. Prints rows per second
for each variant. Usage: python3 benches/scripts/sqlite_audit_rows.py
"""
import os
import random
import sqlite3
import tempfile
import time

EVENT_INDEXES = {
    "at": "CREATE INDEX ev_at ON ev (at, node, seq)",
    "actor": "CREATE INDEX ev_actor ON ev (actor, at)",
    "resource": "CREATE INDEX ev_resource ON ev (resource, at)",
    "type": "CREATE INDEX ev_type ON ev (type, at)",
}


def run(directory, indexes, events, batches=600, batch=32):
    path = os.path.join(directory, "rows.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE tokens (tenant BLOB, token TEXT, fp BLOB, ct BLOB, PRIMARY KEY (tenant, token))")
    db.execute("CREATE INDEX tokens_fp ON tokens (tenant, fp)")
    db.execute(
        "CREATE TABLE ev (node TEXT, seq INTEGER, at INTEGER, type TEXT, actor TEXT, "
        "resource TEXT, request_id TEXT, prev_hash BLOB, record_hash BLOB, PRIMARY KEY (node, seq))"
    )
    for name in indexes:
        db.execute(EVENT_INDEXES[name])
    seq = 0
    started = time.time()
    for _ in range(batches):
        db.execute("BEGIN")
        rows = [
            (b"tenant-0000000000", "%016d" % random.randrange(10**16), os.urandom(32), os.urandom(80))
            for _ in range(batch)
        ]
        db.executemany("INSERT INTO tokens VALUES (?, ?, ?, ?)", rows)
        if events:
            records = []
            for row in rows:
                seq += 1
                records.append(
                    ("bench", seq, int(time.time() * 1e6), "token.tokenize", "client:abc",
                     row[1], "req-%d" % seq, os.urandom(32), os.urandom(32))
                )
            db.executemany("INSERT INTO ev VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", records)
        db.execute("COMMIT")
    elapsed = time.time() - started
    db.close()
    return batches * batch / elapsed


def main():
    with tempfile.TemporaryDirectory() as directory:
        variants = [
            ("token rows only", [], False),
            ("with events, four indexes", list(EVENT_INDEXES), True),
            ("with events, no resource index", ["at", "actor", "type"], True),
            ("with events, key only", [], True),
        ]
        for name, indexes, events in variants:
            print(f"{name:<34} {run(directory, indexes, events):>8.0f} token rows/s")


if __name__ == "__main__":
    main()
