"""What the benchmarks share: PostgreSQL and Redis at hand (or one readable line saying
they are not), SQL on the Django connection, emptying tables between phases, a clock for the
time spent inside it, worker subprocesses, the self-checks that make a run exit 1, and the
``--smoke`` flag every bench takes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgres://postgres@127.0.0.1:5432"
SMOKE_HELP = (
    "every phase and self-check at a size that runs in seconds, clear of a full run's database and "
    "Redis database; no goal judged (tests/integration/test_bench_smoke.py runs it)"
)


def environment(database: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The variables a bench and its workers run with: the real settings on the bench's own
    database and Redis database."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"{POSTGRES}/{database}",
        "CELERY_BROKER_URL": redis_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-only",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


@contextlib.contextmanager
def own_database(bench: str, database: str, variables: dict[str, str], *, flush_redis: bool = False):
    """A freshly created and migrated database for the bench, dropped afterwards whatever
    happens (a terminated bench too); with ``flush_redis`` its Redis database is emptied
    before and after."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    os.environ.update(variables)
    redis_url = variables["REDIS_URL"] if flush_redis else None
    require_services(bench, redis_url)
    admin_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    admin_sql(f"CREATE DATABASE {database}")
    if redis_url:
        redis_client(redis_url).flushdb()
    ready = False
    try:
        import django
        from django.core.management import call_command

        django.setup()
        ready = True
        began = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        migrated = time.perf_counter() - began
        version, buffers = sql("SHOW server_version")[0][0].split()[0], sql("SHOW shared_buffers")[0][0]
        print(f"(PostgreSQL {version}, shared_buffers {buffers}; database {database} migrated in {migrated:.1f} s)")
        yield
    finally:
        if ready:
            from django.db import connections

            connections.close_all()
        admin_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if redis_url:
            redis_client(redis_url).flushdb()


def admin_sql(statement: str) -> None:
    """A statement on the server's maintenance database (creating and dropping the bench's own)."""
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(statement)


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url)


def require_services(bench: str, redis_url: str | None = None) -> None:
    """One readable line, not a traceback, when PostgreSQL or Redis is not there."""
    try:
        admin_sql("SELECT 1")
    except Exception as exc:
        sys.exit(f"{bench} needs PostgreSQL at {POSTGRES} (trust auth): {str(exc).strip().splitlines()[0]}")
    if redis_url:
        try:
            redis_client(redis_url).ping()
        except Exception as exc:
            sys.exit(f"{bench} needs Redis at {redis_url}: {exc}")


def sql(statement: str, params: list | None = None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        return cursor.fetchall() if cursor.description else []


def truncate(*tables: str) -> None:
    """Empty ``tables`` and every table that references them by foreign key, however
    indirectly, in one TRUNCATE naming them all. PostgreSQL refuses to truncate a table that
    another references (billing's invoices reference journal entries), and new references come
    with other apps' migrations; CASCADE would also take rows the bench never wrote and goes on
    relying on, so a referencing table that holds rows stops the bench instead."""
    found = sql(
        """
        WITH RECURSIVE referencing(id) AS (
            SELECT unnest(%s::regclass[])::oid
            UNION
            SELECT c.conrelid FROM pg_constraint c JOIN referencing r ON c.confrelid = r.id WHERE c.contype = 'f'
        )
        SELECT id::regclass::text FROM referencing
        """,
        [list(tables)],
    )
    others = sorted({name for (name,) in found} - set(tables))
    holding = [name for name in others if sql(f"SELECT EXISTS (SELECT FROM {name})")[0][0]]
    if holding:
        raise RuntimeError(f"emptying {', '.join(tables)} would empty {', '.join(holding)} too, which hold rows")
    sql(f"TRUNCATE {', '.join((*tables, *others))}")


def batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlClock:
    """Queries and seconds spent in cursor.execute (COMMIT and COPY data are not seen)."""

    def __init__(self) -> None:
        self.queries = 0
        self.seconds = 0.0

    def __call__(self, execute, statement, params, many, context):
        began = time.perf_counter()
        try:
            return execute(statement, params, many, context)
        finally:
            self.queries += 1
            self.seconds += time.perf_counter() - began


class Worker:
    """One celery worker subprocess in a session of its own, so stop() takes its pool too."""

    def __init__(self, name: str, queues: str, concurrency: int, environment: dict[str, str]) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "-c", str(concurrency), "-Q", queues]
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING", "-n", f"{name}@%h"]
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **environment},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"a worker exited ({self.process.returncode}):\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self, wait: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


class Checks:
    """The bench's checks of its own results: each failure printed as it happens, and the
    run's exit status 1 at the end if any failed. No speed is a check."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            print(f"  CHECK FAILED: {what}")

    def exit_if_failed(self) -> None:
        if self.failures:
            print(f"\n{len(self.failures)} check(s) failed:")
            for failure in self.failures:
                print(f"  {failure}")
            sys.exit(1)


def start_workers(prefix: str, queue: str, count: int, variables: dict[str, str]) -> list[Worker]:
    """``count`` workers of one process each on ``queue``, answering a ping before anything
    is timed."""
    from config.celery import app

    workers: list[Worker] = []
    try:
        workers.extend(Worker(f"{prefix}{n}", queue, 1, variables) for n in range(count))
        names = {f"{prefix}{n}@{socket.gethostname()}" for n in range(count)}
        deadline = time.monotonic() + 90
        answered: set[str] = set()
        while answered != names:
            for worker in workers:
                worker.check()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"workers not ready after 90 s ({sorted(answered)} answered):\n{workers[0].output()}"
                )
            replies = app.control.ping(destination=sorted(names), timeout=1.0)
            answered = {name for reply in replies for name in reply}
    except BaseException:
        # The caller has no list to stop yet, and a worker runs in a session of its own: left
        # here (a worker that never answered, a bench terminated while waiting) it outlives the
        # bench, on a dropped database.
        for worker in workers:
            worker.stop()
        raise
    return workers


def finished(run_id: int, workers: list[Worker], what: str, *, poll: float = 0.1, stall: float = 180.0):
    """The run once it succeeds; an error when it ends otherwise or its chunks stop moving
    for ``stall`` seconds. Looks every ``poll`` seconds; the run's times are on its row."""
    from scheduling.choices import RunStatus
    from scheduling.models import JobRun

    last, moved = None, time.perf_counter()
    while True:
        run = JobRun.objects.get(pk=run_id)
        if run.status == RunStatus.SUCCEEDED:
            return run
        if run.is_finished:
            raise RuntimeError(f"{what}: the run ended {run.status}: {run.error}\n{workers[0].output()}")
        now = time.perf_counter()
        if (run.status, run.chunks_done) != last:
            last, moved = (run.status, run.chunks_done), now
        elif now - moved > stall:
            raise RuntimeError(f"{what}: stuck at {run.status}, {run.chunks_done} chunks for {stall:.0f} s")
        for worker in workers:
            worker.check()
        time.sleep(poll)
