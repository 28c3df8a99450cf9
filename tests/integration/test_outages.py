"""Runs recover from their services within minutes: a PostgreSQL crash (kill -9 of the
postmaster, back 4 s later) and a Redis restart that loses every message, each in the middle
of a 30-chunk invoice run on two workers with beat (and so the watchdog) running. The run
must finish within a few minutes of the service's return, with every customer billed once,
numbered without a gap and posted balanced; a run asked for while Redis is down is sent once
it is back.

Each test has a PostgreSQL and a Redis of its own (tests/private_services.py), so crashing
them touches nothing else; the platform's processes and the scenario's steps
(tests/outages.py) run against them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from tests.helpers import wait_for
from tests.private_services import PrivatePostgres, PrivateRedis
from tests.processes import ROOT, PlatformProcess, celery, manage

CUSTOMERS, CHUNK = 3000, 100  # 30 chunks
SLOW = 0.4  # seconds each invoice insert takes: the run lasts long enough to be interrupted
INTERRUPT_AT = 5  # chunks done when the service goes
RECOVERED_WITHIN = 240  # seconds after the service is back by which the run must have finished
GRACE = 15  # JOB_STALL_GRACE for these processes


@pytest.fixture
def outage_platform(tmp_path):
    """Private PostgreSQL and Redis, migrated, with a school of CUSTOMERS; two workers and
    a beat on them. Yields the scenario with its services and processes."""
    postgres, redis = PrivatePostgres().init(), PrivateRedis()
    processes: list[PlatformProcess] = []
    try:
        postgres.start()
        redis.start()
        scenario = Scenario(postgres, redis, processes, tmp_path)
        scenario.prepare()
        yield scenario
    finally:
        for process in reversed(processes):
            process.kill()
        redis.stop()
        postgres.stop()


class Scenario:
    def __init__(self, postgres: PrivatePostgres, redis: PrivateRedis, processes: list, logs) -> None:
        self.postgres, self.redis, self.processes, self.logs = postgres, redis, processes, logs
        self.database = "countinghouse_outage"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings_integration",
            "DATABASE_URL": postgres.url(self.database),
            "CELERY_BROKER_URL": redis.url(0),
            "REDIS_URL": redis.url(1),
            "SECRET_KEY": "outage-tests-only",
            "JOB_STALL_GRACE": str(GRACE),
            "PYTHONUNBUFFERED": "1",
        }

    def prepare(self) -> None:
        with psycopg.connect(self.postgres.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {self.database}")
        self.step(*manage("migrate", "--no-input", "-v", "0"))
        self.company = int(self.step(sys.executable, "-m", "tests.outages", "setup", str(CUSTOMERS), str(SLOW)))
        for n in range(2):
            worker = self.start(f"worker{n}", celery("worker", "-n", f"outage{n}-{uuid.uuid4().hex[:6]}@%h", "-c", "1"))
            worker.wait_for_output(" ready.", timeout=60)
        beat = self.start("beat", celery("beat", "--pidfile", "", "--max-interval", "1"))
        beat.wait_for_output("beat: Starting", timeout=60)

    def start(self, name: str, argv: list[str]) -> PlatformProcess:
        process = PlatformProcess(name, [*argv, "--loglevel", "INFO"], self.env, self.logs).start()
        self.processes.append(process)
        return process

    def step(self, *argv: str) -> str:
        done = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def outages(self, *args: str) -> str:
        return self.step(sys.executable, "-m", "tests.outages", *args)

    def state(self, run_id: int) -> dict | None:
        """The run as the database has it, or None while the database cannot answer."""
        try:
            with psycopg.connect(self.postgres.url(self.database), connect_timeout=2) as connection:
                row = connection.execute(
                    "SELECT status, chunks_done, chunks_total, error FROM scheduling_jobrun WHERE id = %s", [run_id]
                ).fetchone()
        except psycopg.OperationalError:
            return None
        return dict(zip(("status", "chunks_done", "chunks_total", "error"), row, strict=True)) if row else None

    def wait_until_interruptible(self, run_id: int) -> dict:
        state = wait_for(
            lambda: (s := self.state(run_id)) and s["chunks_done"] >= INTERRUPT_AT and s,
            timeout=120,
            interval=0.1,
            what=f"run {run_id} to finish {INTERRUPT_AT} chunks",
        )
        assert state["status"] == "running" and state["chunks_done"] < state["chunks_total"], state
        return state

    def finished_within(self, run_id: int, seconds: float) -> tuple[dict, float]:
        began = time.monotonic()
        state = wait_for(
            lambda: (s := self.state(run_id)) and s["status"] not in ("queued", "running", "retrying") and s,
            timeout=seconds,
            interval=0.5,
            what=f"run {run_id} to finish after the outage:\n{self.tails()}",
        )
        return state, time.monotonic() - began

    def tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in self.processes)

    def verify(self, run_id: int) -> dict:
        return json.loads(self.outages("verify", str(self.company), str(run_id)))


def test_a_database_crash_mid_run_is_waited_out_and_the_run_finishes_billing_each_customer_once(outage_platform):
    scenario = outage_platform
    run = int(scenario.outages("request", str(scenario.company), str(CHUNK)))
    scenario.wait_until_interruptible(run)

    scenario.postgres.crash()
    time.sleep(4)
    scenario.postgres.start()
    state, took = scenario.finished_within(run, RECOVERED_WITHIN)

    assert state["status"] == "succeeded", (state, scenario.tails())
    assert all(process.alive for process in scenario.processes), scenario.tails()  # beat and workers rode it out
    billed = scenario.verify(run)
    assert billed["invoices"] == CUSTOMERS
    print(f"database crash: the run finished {took:.0f} s after PostgreSQL was back: {billed}")  # noqa: T201


def test_a_redis_restart_that_loses_every_message_is_recovered_and_a_run_asked_for_meanwhile_is_sent(
    outage_platform,
):
    scenario = outage_platform
    run = int(scenario.outages("request", str(scenario.company), str(CHUNK)))
    scenario.wait_until_interruptible(run)

    scenario.redis.crash()
    asked_while_down = int(scenario.outages("probe"))  # its message cannot be sent: it stays queued
    time.sleep(3)
    scenario.redis.start()
    state, took = scenario.finished_within(run, RECOVERED_WITHIN)
    probe, _ = scenario.finished_within(asked_while_down, RECOVERED_WITHIN)

    assert state["status"] == "succeeded", (state, scenario.tails())
    assert probe["status"] == "succeeded", (probe, scenario.tails())
    assert all(process.alive for process in scenario.processes), scenario.tails()
    billed = scenario.verify(run)
    assert billed["invoices"] == CUSTOMERS
    assert "stalled" in billed["alerts"]  # its lost chunks were found and sent again by the watchdog
    print(f"Redis restart: the run finished {took:.0f} s after Redis was back: {billed}")  # noqa: T201
