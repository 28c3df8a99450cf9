"""Every bench in bench/ still runs: each at its ``--smoke`` size, every phase and self-check on
and no goal judged, so a change that breaks a bench fails here rather than on the next
evening someone measures.

A bench makes its own database (a smoke run's own, apart from a full run's) and Redis database
and drops them afterwards; these tests use neither the Django test database nor the
integration broker, and hand the bench none of this run's settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config.env import VARIABLES
from tests.processes import ROOT

BENCHES = sorted(path.stem for path in (ROOT / "bench").glob("*.py") if path.stem not in {"common", "__init__"})
NEEDS_NO_SERVICES = {"embedded_writes"}  # SQLite files of its own; a new bench is assumed to need them
TIMEOUT = 180  # seconds; a smoke run takes about 30, more while the rest of the suite runs beside it
STOPPING = 60  # seconds a bench gets, once terminated, to stop its workers and drop its database
TAIL = 60  # lines of a failed bench's output shown


def bench_environment() -> dict[str, str]:
    """This process's environment without the platform's variables: the integration run's
    DATABASE_URL (and broker, cache, settings module) must not reach a bench and point it at
    this run's databases; the bench names its own."""
    platform = {*VARIABLES, "DJANGO_SETTINGS_MODULE"}
    return {
        **{name: value for name, value in os.environ.items() if name not in platform},
        "PYTHONUNBUFFERED": "1",  # its output in the order it was written, up to a timeout
    }


def tail(output: str) -> str:
    return "\n".join(output.rstrip().splitlines()[-TAIL:])


def run_bench(name: str, *arguments: str) -> tuple[int, str]:
    process = subprocess.Popen(
        [sys.executable, f"bench/{name}.py", *arguments],
        cwd=ROOT,
        env=bench_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the bench then stops its workers (their own sessions, which a
        # kill of the bench would leave running) and drops its database.
        process.terminate()
        try:
            output, _ = process.communicate(timeout=STOPPING)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        pytest.fail(f"bench/{name}.py {' '.join(arguments)} did not finish in {TIMEOUT} s:\n{tail(output)}")
    return process.returncode, output


@pytest.fixture
def empty_queues():
    """Overrides the suite's purge of its broker: a bench uses a Redis database of its own
    and empties it itself, so these tests leave the integration broker alone."""


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.embedded) if name in NEEDS_NO_SERVICES else name for name in BENCHES]
)
def test_bench_runs_at_smoke_size(name):
    # given a bench that offers a smoke size
    code, usage = run_bench(name, "--help")
    assert code == 0, f"bench/{name}.py --help exited {code}:\n{tail(usage)}"
    if "--smoke" not in usage:
        pytest.fail(f"bench/{name}.py has no --smoke flag: give it one (see bench/common.py, SMOKE_HELP)")

    # when it runs at that size
    code, output = run_bench(name, "--smoke")

    # then every phase ran and every self-check passed
    assert code == 0, f"bench/{name}.py --smoke exited {code}; the last {TAIL} lines:\n{tail(output)}"


def test_benches_are_found():
    # A bench moved or renamed would otherwise drop out of this file, or out of NEEDS_NO_SERVICES,
    # without a word.
    assert BENCHES
    assert NEEDS_NO_SERVICES.issubset(BENCHES)
