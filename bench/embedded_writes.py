"""Embedded mode: concurrent writers on one SQLite file.

Several processes (web, workers, beat) write to one SQLite file. Each writer here runs
the transaction shape the platform uses most — read a row, update it, insert a log row
(claiming a run, update_or_create, recording a heartbeat) — inside Django's atomic().

Three ways, measured in one run on the same machine:

- naive:    Django's SQLite defaults (rollback journal, DEFERRED transactions, 5 s timeout)
- platform: the embedded settings (WAL, IMMEDIATE transactions, 30 s busy timeout)
- floor:    the same transactions from one process on one connection, with nothing to
            contend with — the database's own rate for this work

It prints committed transactions per second, the "database is locked" failures, and the
ratios platform/naive and platform/floor. It checks that every committed transaction wrote
both its rows and no writer died, and exits 1 if not. No speed is pass or fail.

    .venv/bin/python bench/embedded_writes.py [--writers 4] [--transactions 400]
    .venv/bin/python bench/embedded_writes.py --smoke   # every way and check in seconds

``--smoke`` (the same four writers, 25 transactions each) runs the three ways and the checks in
seconds and prints figures without meaning: the integration suite runs it to catch a bench that
no longer runs. Needs no services: each way writes a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SMOKE_HELP, Checks

NAIVE_OPTIONS: dict = {}
SMOKE = {"writers": 4, "transactions": 25}
PATIENCE = 600  # seconds for every writer to report, however slow the machine

check = Checks()


def writer(path: str, options: dict, worker: int, transactions: int, start, results) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": path, "OPTIONS": options}},
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()
    from django.db import OperationalError, connection, transaction

    committed = locked = 0
    start.wait()
    began = time.perf_counter()
    for n in range(transactions):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT value FROM counter WHERE id = 1")
                cursor.fetchone()
                cursor.execute("UPDATE counter SET value = value + 1 WHERE id = 1")
                cursor.execute("INSERT INTO log (worker, n) VALUES (%s, %s)", [worker, n])
            committed += 1
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            locked += 1
    results.put((committed, locked, time.perf_counter() - began))


def prepare(path: str) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
        db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, worker INTEGER, n INTEGER)")
        db.execute("INSERT INTO counter VALUES (1, 0)")


def collect(results, processes) -> list[tuple]:
    """Each writer's outcome; a writer that died (an error other than "locked") stops the bench
    at once rather than after the whole wait."""
    outcomes: list[tuple] = []
    deadline = time.monotonic() + PATIENCE
    while len(outcomes) < len(processes):
        try:
            outcomes.append(results.get(timeout=0.5))
        except queue.Empty:
            dead = [process.exitcode for process in processes if process.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a writer exited with {dead[0]} (its traceback is above)") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(outcomes)} of {len(processes)} writers reported in {PATIENCE} s") from None
    return outcomes


def run(options: dict, writers: int, transactions: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bench.sqlite3")
        prepare(path)
        context = multiprocessing.get_context("spawn")
        start, results = context.Event(), context.Queue()
        processes = [
            context.Process(target=writer, args=(path, options, w, transactions, start, results))
            for w in range(writers)
        ]
        for process in processes:
            process.start()
        time.sleep(1.5)  # let every process import Django before the clock starts
        began = time.perf_counter()
        start.set()
        outcomes = collect(results, processes)
        wall = time.perf_counter() - began
        for process in processes:
            process.join()

        import sqlite3

        with sqlite3.connect(path) as db:
            counter = db.execute("SELECT value FROM counter").fetchone()[0]
            logged = db.execute("SELECT count(*) FROM log").fetchone()[0]
    committed = sum(o[0] for o in outcomes)
    check(counter == logged == committed, f"{committed} committed, yet the counter says {counter} and the log {logged}")
    return {"committed": committed, "locked": sum(o[1] for o in outcomes), "seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--transactions", type=int, default=400, help="per writer")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)

    from config.settings import SQLITE_OPTIONS

    total = args.writers * args.transactions
    naive = run(NAIVE_OPTIONS, args.writers, args.transactions)
    platform = run(SQLITE_OPTIONS, args.writers, args.transactions)
    floor = run(SQLITE_OPTIONS, 1, total)

    print(f"{args.writers} writers x {args.transactions} transactions (read, update, insert) on one SQLite file\n")
    print(f"{'':10} {'committed':>10} {'locked':>8} {'seconds':>8} {'tx/s':>9}")
    for name, r in (("naive", naive), ("platform", platform), ("floor", floor)):
        rate = r["committed"] / r["seconds"]
        print(f"{name:10} {r['committed']:>10} {r['locked']:>8} {r['seconds']:>8.2f} {rate:>9.0f}")
    rate = {
        name: r["committed"] / r["seconds"] for name, r in (("naive", naive), ("platform", platform), ("floor", floor))
    }
    print()
    print(f"platform / naive committed tx/s: {rate['platform'] / rate['naive']:.2f}x")
    print(f"platform / floor tx/s:           {rate['platform'] / rate['floor']:.2f}x")
    print(f"lost to 'database is locked':    naive {naive['locked']}/{total}, platform {platform['locked']}/{total}")
    check.exit_if_failed()


if __name__ == "__main__":
    main()
