"""Settings fail at start-up naming the variable; the mode follows the environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import env

ROOT = Path(__file__).resolve().parents[2]
SERVICE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SECRET_KEY")


def load_settings(tmp_path, **variables):
    """Import config.settings in a fresh interpreter with exactly these variables set."""
    environment = {k: v for k, v in os.environ.items() if k not in env.VARIABLES}
    environment.update(COUNTINGHOUSE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **variables)
    code = "from django.conf import settings; print(settings.MODE, settings.DATABASES['default']['ENGINE'])"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_no_service_variables_means_embedded_mode(tmp_path):
    result = load_settings(tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["embedded", "django.db.backends.sqlite3"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_all_service_variables_mean_distributed_mode(tmp_path):
    result = load_settings(
        tmp_path,
        DATABASE_URL="postgres://u:p@db:5432/books",
        CELERY_BROKER_URL="amqp://guest:guest@mq:5672//",
        REDIS_URL="redis://cache:6379/1",
        SECRET_KEY="s",
        CELERY_TASK_SOFT_TIME_LIMIT="1500",
        CELERY_TASK_TIME_LIMIT="1700",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["distributed", "django.db.backends.postgresql"]


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DATABASE_URL": "postgres://db/x"}, "CELERY_BROKER_URL"),
        (
            {"DATABASE_URL": "postgres://db/x", "CELERY_BROKER_URL": "redis://r:6379/0", "REDIS_URL": "redis://r/1"},
            "SECRET_KEY",
        ),
        (
            {"DATABASE_URL": "mysql://db/x", "CELERY_BROKER_URL": "redis://r/0", "REDIS_URL": "redis://r/1"}
            | {"SECRET_KEY": "s"},
            "DATABASE_URL",
        ),
        (
            {"DATABASE_URL": "postgres://db/x", "CELERY_BROKER_URL": "sqs://q", "REDIS_URL": "redis://r/1"}
            | {"SECRET_KEY": "s"},
            "CELERY_BROKER_URL",
        ),
        ({"CELERY_TASK_TIME_LIMIT": "ten"}, "CELERY_TASK_TIME_LIMIT"),
        ({"CELERY_TASK_TIME_LIMIT": "8000"}, "CELERY_VISIBILITY_TIMEOUT"),
        ({"NOTIFY_RETRY_BACKOFF_MAX": "7200"}, "NOTIFY_RETRY_BACKOFF_MAX"),
        ({"NOTIFY_WEBHOOK_ALLOW_PRIVATE": "perhaps"}, "NOTIFY_WEBHOOK_ALLOW_PRIVATE"),
        ({"NOTIFY_MAX_ATTEMPTS": "0"}, "NOTIFY_MAX_ATTEMPTS"),
        ({"SECRETS_KEYS": "not-a-fernet-key"}, "SECRETS_KEYS"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"AUTH_TOKEN_RATE": "lots"}, "AUTH_TOKEN_RATE"),
        ({"HEALTH_CRITICAL_CHECKS": "database,disk"}, "HEALTH_CRITICAL_CHECKS"),
    ],
)
def test_missing_or_malformed_setting_stops_start_up_naming_it(tmp_path, variables, named):
    result = load_settings(tmp_path, **variables)

    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("countinghouse: configuration error: ")
    assert named in result.stderr


def test_manage_py_reports_a_bad_setting_in_one_line(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in env.VARIABLES}
    environment.update(COUNTINGHOUSE_VAR_DIR=str(tmp_path), REDIS_URL="redis://cache:6379/1")

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "countinghouse: configuration error: DATABASE_URL is required in distributed mode (REDIS_URL set); "
        "unset all of DATABASE_URL, CELERY_BROKER_URL, REDIS_URL for the embedded mode"
    ]


def test_reading_an_undeclared_variable_is_a_programming_error():
    with pytest.raises(KeyError):
        env.text("NOT_DECLARED_ANYWHERE", "")


def test_unit_tests_never_run_in_eager_mode_or_against_services(settings):
    from django.db import connection

    assert connection.vendor == "sqlite"
    assert "memory" in str(settings.DATABASES["default"]["NAME"])
    assert settings.CELERY_BROKER_URL == "memory://"
    assert not settings.CELERY_TASK_ALWAYS_EAGER


def test_celery_is_configured_for_long_tasks_that_survive_lost_workers(settings):
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT < settings.CELERY_VISIBILITY_TIMEOUT
    assert [q.name for q in settings.CELERY_TASK_QUEUES] == list(settings.QUEUES)


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("billing.jobs.invoice_run", "billing"),
        ("ledger.close", "ledger"),
        ("receivables.sync", "receivables"),
        ("notifications.deliver", "notifications"),
        ("scheduling.probe", "default"),
    ],
)
def test_tasks_route_to_their_apps_queue(task, queue):
    from config.celery import app

    route = app.amqp.router.route({}, task)

    assert route["queue"].name == queue


@pytest.mark.parametrize(
    "value",
    [
        "mysql://books:hunter2@db/x",
        "mysql://books:hun/ter2@db/x",
        "postgres://books:hunter2@db:54x32/books",
        "postgres://books:hu#nter2@:5432/books",
    ],
)
def test_no_malformed_url_error_shows_its_password(monkeypatch, value):
    monkeypatch.setenv("DATABASE_URL", value)

    with pytest.raises(ImproperlyConfigured) as raised:
        env.database()

    assert "DATABASE_URL" in str(raised.value)
    assert "hunter2" not in str(raised.value) and "ter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"CELERY_BROKER_URL": "amqp://guest:guest@mq:5672//"}, "RABBITMQ_CONSUMER_TIMEOUT"),
        ({"CELERY_BROKER_URL": "redis://r:63x79/0"}, "CELERY_BROKER_URL"),
    ],
)
def test_broker_settings_that_would_fail_later_fail_at_start_up(tmp_path, variables, named):
    service = {"DATABASE_URL": "postgres://db/x", "REDIS_URL": "redis://r/1", "SECRET_KEY": "s"}

    result = load_settings(tmp_path, **service, **variables)

    assert result.returncode != 0
    assert named in result.stderr
