"""Integration tests: PostgreSQL, Redis (and RabbitMQ for a subset) with real worker and
beat processes. They skip with a clear message when the services are absent, and fail
when COUNTINGHOUSE_REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import io
import os
import socket
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.processes import QUEUES, PlatformProcess, celery

REQUIRE_SERVICES = os.environ.get("COUNTINGHOUSE_REQUIRE_SERVICES") == "1"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def missing_services() -> list[str]:
    if settings.MODE != "distributed" or settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        return ["PostgreSQL and Redis settings (run with DJANGO_SETTINGS_MODULE=config.settings_integration)"]
    db = settings.DATABASES["default"]
    missing = []
    if not _reachable(f"postgres://{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}", 5432):
        missing.append(f"PostgreSQL at {db['HOST']}:{db['PORT'] or 5432}")
    for name, url in (("broker", settings.CELERY_BROKER_URL), ("cache", settings.CACHES["default"]["LOCATION"])):
        if not _reachable(url, 6379 if url.startswith("redis") else 5672):
            missing.append(f"the {name} at {urlsplit(url).hostname}:{urlsplit(url).port}")
    return missing


def rabbitmq_url() -> str:
    return os.environ.get("COUNTINGHOUSE_RABBITMQ_URL") or DEFAULT_RABBITMQ_URL


def pytest_collection_modifyitems(config, items):
    integration = [item for item in items if "tests/integration" in str(item.fspath)]
    needs_services = [item for item in integration if not item.get_closest_marker("embedded")]
    missing = missing_services() if needs_services else []
    if missing:
        message = "integration tests need " + ", ".join(missing)
        if REQUIRE_SERVICES:
            raise pytest.UsageError(f"COUNTINGHOUSE_REQUIRE_SERVICES=1 and {message}")
        for item in needs_services:
            item.add_marker(pytest.mark.skip(reason=message))
    rabbit = [item for item in integration if item.get_closest_marker("rabbitmq")]
    if rabbit and not _reachable(rabbitmq_url(), 5672):
        message = f"RabbitMQ is not reachable at {urlsplit(rabbitmq_url()).netloc.split('@')[-1]}"
        if os.environ.get("COUNTINGHOUSE_RABBITMQ_URL"):
            raise pytest.UsageError(f"COUNTINGHOUSE_RABBITMQ_URL is set but {message}")
        for item in rabbit:
            item.add_marker(pytest.mark.skip(reason=message))


@pytest.fixture(scope="session")
def rabbitmq_with_priorities() -> str:
    """RabbitMQ, its task queues declared with priorities: a machine's RabbitMQ may still
    hold them as declared before priorities, which every worker would refuse."""
    url = rabbitmq_url()
    call_command("migrate_priority_queues", "--broker", url, "--wait", "30", stdout=io.StringIO())
    return url


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_url(request) -> str:
    """Runs the test once with Redis and once with RabbitMQ as the broker."""
    if request.param == "rabbitmq":
        return request.getfixturevalue("rabbitmq_with_priorities")
    return settings.CELERY_BROKER_URL


@pytest.fixture
def platform_env(transactional_db) -> dict[str, str]:
    """Environment for child processes: the real settings, on the test database."""
    db = settings.DATABASES["default"]
    parts = urlsplit(os.environ["DATABASE_URL"])
    test_db_url = urlunsplit(parts._replace(path="/" + db["NAME"]))
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_integration",
        "DATABASE_URL": test_db_url,
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def processes(tmp_path):
    started: list[PlatformProcess] = []
    yield started
    for process in reversed(started):
        if process.alive:
            try:
                process.stop(timeout=20)
            except AssertionError:
                process.kill()


@pytest.fixture
def start_worker(platform_env, processes, tmp_path):
    """Start a real worker process and wait until it is ready."""

    def start(
        *, broker: str | None = None, concurrency: int = 1, env: dict | None = None, queues: str = QUEUES
    ) -> PlatformProcess:
        name = f"worker-{uuid.uuid4().hex[:8]}"
        environment = {**platform_env, **(env or {})}
        if broker:
            environment["CELERY_BROKER_URL"] = broker
        if broker and broker.startswith("amqp"):
            # below RabbitMQ's default consumer_timeout (30 min), as the settings insist
            environment.setdefault("CELERY_TASK_SOFT_TIME_LIMIT", "1500")
            environment.setdefault("CELERY_TASK_TIME_LIMIT", "1700")
        argv = celery("worker", "-Q", queues, "-n", f"{name}@%h", "-c", str(concurrency), "--loglevel", "INFO")
        worker = PlatformProcess(name, argv, environment, tmp_path)
        processes.append(worker.start())
        worker.wait_for_output(" ready.", timeout=60)
        worker.nodename = f"{name}@{socket.gethostname()}"
        return worker

    return start


@pytest.fixture
def start_beat(platform_env, processes, tmp_path):
    def start(env: dict | None = None) -> PlatformProcess:
        argv = celery("beat", "--loglevel", "INFO", "--pidfile", "", "--max-interval", "1")
        beat = PlatformProcess(f"beat-{uuid.uuid4().hex[:8]}", argv, {**platform_env, **(env or {})}, tmp_path)
        processes.append(beat.start())
        beat.wait_for_output("beat: Starting", timeout=60)
        return beat

    return start


@pytest.fixture(scope="session", autouse=True)
def fresh_cache():
    """Run ids start again with each session's new test database: what an earlier session
    left in the shared cache (a cancellation asked for its run 3) must not reach this
    session's run 3."""
    if settings.MODE == "distributed" and not missing_services():
        from django.core.cache import cache

        cache.clear()


@pytest.fixture(autouse=True)
def empty_queues(request):
    """Messages left by an earlier, interrupted run must not reach this test's workers."""
    if "broker_url" in request.fixturenames:
        url = request.getfixturevalue("broker_url")
    else:
        url = settings.CELERY_BROKER_URL if settings.MODE == "distributed" else None
    if url and not request.node.get_closest_marker("embedded"):
        from config.celery import app

        with app.connection_for_write(url) as connection:
            app.control.purge(connection=connection)
