"""Reading settings from the environment.

Every variable the platform reads is declared once in ``VARIABLES`` (the README's
configuration table and the docker-compose check are tested against it). The readers
fail loudly: a missing or malformed value raises ``ImproperlyConfigured`` naming the
variable, so a process refuses to start rather than run half-configured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # as documented; "" means unset
    help: str


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in [
        # Mode and core
        Variable(
            "DATABASE_URL",
            "",
            "postgres://user:pass@host:5432/name selects distributed mode; unset means "
            "the embedded SQLite database under COUNTINGHOUSE_VAR_DIR.",
        ),
        Variable(
            "CELERY_BROKER_URL",
            "",
            "redis://host:6379/0 or amqp://user:pass@host:5672//; required in "
            "distributed mode, unset means the embedded filesystem broker.",
        ),
        Variable("REDIS_URL", "", "redis://host:6379/1, the shared cache; required in distributed mode."),
        Variable(
            "COUNTINGHOUSE_VAR_DIR",
            "./var",
            "Where the embedded mode keeps its database, broker folders, cache and generated secrets.",
        ),
        Variable(
            "SECRET_KEY",
            "",
            "Django's signing key; required in distributed mode, generated into the var directory in embedded mode.",
        ),
        Variable(
            "SECRETS_KEYS",
            "",
            "Comma-separated Fernet keys encrypting stored secrets (webhook secrets, tokens), newest first; unset "
            "means one derived from SECRET_KEY.",
        ),
        Variable("DEBUG", "false", "Django debug pages. Never true in production."),
        Variable(
            "ALLOWED_HOSTS",
            "localhost,127.0.0.1,[::1]",
            "Comma-separated host names the web process answers to.",
        ),
        Variable(
            "CSRF_TRUSTED_ORIGINS",
            "",
            "Comma-separated origins (https://books.example.com) for admin logins behind a proxy.",
        ),
        Variable(
            "DATABASE_CONN_MAX_AGE", "60", "Seconds a PostgreSQL connection is kept open (0 closes after each request)."
        ),
        Variable(
            "AUTH_TOKEN_RATE",
            "20/min",
            "Token requests (POST /api/v1/auth/token) allowed per client address, as n/sec, n/min or n/hour.",
        ),
        Variable("LOG_LEVEL", "INFO", "Log level of the platform's own loggers."),
        # Celery
        Variable(
            "CELERY_TASK_SOFT_TIME_LIMIT", "3300", "Seconds before a task is asked to stop (SoftTimeLimitExceeded)."
        ),
        Variable("CELERY_TASK_TIME_LIMIT", "3600", "Seconds before a task's worker process is killed."),
        Variable(
            "CELERY_VISIBILITY_TIMEOUT",
            "7200",
            "Seconds an unacknowledged Redis message stays invisible before redelivery; "
            "must exceed CELERY_TASK_TIME_LIMIT.",
        ),
        Variable(
            "CELERY_WORKER_PREFETCH_MULTIPLIER",
            "1",
            "Messages a worker process reserves ahead; 1 suits long tasks.",
        ),
        Variable("CELERY_WORKER_CONCURRENCY", "2", "Processes per worker started by make run and docker compose."),
        Variable(
            "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT",
            "0",
            "Seconds running tasks get on a cold shutdown before they are cancelled and requeued "
            "(docker compose sets it under the worker's stop grace period).",
        ),
        Variable(
            "REMAP_SIGTERM",
            "",
            "Read by Celery itself: SIGQUIT makes SIGTERM a cold shutdown with the soft timeout above "
            "(docker compose sets it for workers).",
        ),
        Variable(
            "RABBITMQ_CONSUMER_TIMEOUT",
            "1800",
            "The RabbitMQ server's consumer_timeout in seconds; CELERY_TASK_TIME_LIMIT must stay below it.",
        ),
        Variable("CELERY_RESULT_EXPIRES", "604800", "Seconds task results are kept in the database."),
        # Health
        Variable(
            "HEALTH_CRITICAL_CHECKS",
            "database,broker,cache",
            "Checks whose failure makes /api/v1/health answer 503 (of database, broker, cache, workers, beat).",
        ),
        Variable("HEALTH_WORKER_TIMEOUT", "1.5", "Seconds the health check waits for a worker to answer a ping."),
        Variable("HEALTH_BEAT_STALE_AFTER", "60", "Seconds after which beat's last tick counts as stale."),
        # Job layer
        Variable(
            "BEAT_LEASE_SECONDS",
            "30",
            "How long the leading beat's lease lasts; a standby beat takes over this long after the leader dies.",
        ),
        Variable(
            "JOB_LOG_RETENTION_DAYS", "90", "Days job logs, finished runs' chunk records and task results are kept."
        ),
        Variable(
            "JOB_MISSED_GRACE",
            "300",
            "Seconds after a scheduled slot before the watchdog reports it missed when no run exists for it.",
        ),
        Variable(
            "JOB_STALL_GRACE",
            "180",
            "Seconds a queued run, or a running run's chunks, may go without progress and without a message on a "
            "queue or a worker before the watchdog sends them again (their messages were lost) and raises an alert.",
        ),
        Variable(
            "JOB_BACKFILL_MAX_RUNS",
            "400",
            "Runs one backfill may create unless it is forced (--force, or force in the API).",
        ),
        Variable(
            "METRICS_TOKEN",
            "",
            "Bearer token Prometheus sends to GET /metrics; unset means only staff sessions and tokens may read it.",
        ),
        # Ledger
        Variable(
            "LEDGER_STALE_DRAFT_DAYS",
            "3",
            "Days after which the daily GL close treats a draft journal entry as stale.",
        ),
        Variable(
            "LEDGER_STALE_DRAFT_ACTION",
            "flag",
            "What the daily GL close does with stale drafts: flag (mark them for review) or post (post the valid ones, "
            "flag the rest).",
        ),
        # Notifications
        Variable("NOTIFY_MAX_ATTEMPTS", "6", "Attempts an email or webhook delivery gets before it is marked failed."),
        Variable(
            "NOTIFY_RETRY_BACKOFF",
            "30",
            "Seconds before a delivery's first retry; each retry doubles it (with jitter) up to "
            "NOTIFY_RETRY_BACKOFF_MAX.",
        ),
        Variable("NOTIFY_RETRY_BACKOFF_MAX", "3600", "Longest wait between two attempts of a delivery, in seconds."),
        Variable("NOTIFY_WEBHOOK_TIMEOUT", "10", "Seconds a webhook endpoint gets to answer before the attempt fails."),
        Variable(
            "NOTIFY_WEBHOOK_ALLOW_PRIVATE",
            "false",
            "true lets webhook endpoints point at loopback, private and link-local addresses (a test receiver on "
            "this machine); false refuses them.",
        ),
        Variable(
            "NOTIFY_WEBHOOK_DISABLE_AFTER",
            "5",
            "Deliveries in a row that fail all their attempts before a webhook endpoint is disabled and staff alerted.",
        ),
        Variable(
            "NOTIFY_RETENTION_DAYS",
            "365",
            "Days settled notifications (and their deliveries and dedupe keys) are kept before SYS_NOTIFY_CLEANUP "
            "deletes them.",
        ),
        Variable("NOTIFY_DELIVERY_CHUNK", "500", "Deliveries one delivery task sends."),
        # Email
        Variable(
            "EMAIL_URL",
            "consolemail://",
            "Where email goes: smtp://user:pass@host:587 (smtp+tls:// for STARTTLS, smtp+ssl:// for TLS); "
            "consolemail:// prints it.",
        ),
        Variable(
            "DEFAULT_FROM_EMAIL",
            "countinghouse@localhost",
            "Sender of the platform's email (notifications and job alerts).",
        ),
        # make run / operators
        Variable("ADMIN_USERNAME", "admin", "Superuser created by make run / manage.py ensure_admin."),
        Variable("ADMIN_EMAIL", "admin@example.com", "Email of that superuser."),
        Variable(
            "ADMIN_PASSWORD",
            "",
            "Password of that superuser; unset means one is generated, saved in the var directory and printed.",
        ),
        Variable("WEB_PORT", "8000", "Port of the web process."),
        Variable("FLOWER_PORT", "5555", "Port of Flower."),
        Variable(
            "FLOWER_BASIC_AUTH",
            "",
            "user:password for Flower; unset means the admin user's credentials.",
        ),
        Variable("FLOWER_MAX_TASKS", "10000", "Tasks Flower keeps in memory."),
        # Tests
        Variable(
            "COUNTINGHOUSE_REQUIRE_SERVICES",
            "0",
            "1 makes integration tests fail, not skip, when PostgreSQL or Redis is missing (CI sets it).",
        ),
        Variable(
            "COUNTINGHOUSE_RABBITMQ_URL",
            "",
            "Broker for the RabbitMQ-parametrised integration tests; set means it must be reachable.",
        ),
    ]
}

_UNSET = object()
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

DATABASE_SCHEMES = ("postgres", "postgresql")
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")
REDIS_SCHEMES = ("redis", "rediss")


def _declared(name: str) -> str:
    if name not in VARIABLES:
        raise KeyError(f"{name} is not declared in config.env.VARIABLES")
    return name


def is_set(name: str) -> bool:
    return bool(os.environ.get(_declared(name), "").strip())


def text(name: str, default: str | object = _UNSET) -> str:
    value = os.environ.get(_declared(name), "").strip()
    if value:
        return value
    if default is _UNSET:
        raise ImproperlyConfigured(f"{name} is required: {VARIABLES[name].help}")
    return default  # type: ignore[return-value]


def boolean(name: str, default: bool) -> bool:
    raw = text(name, "").lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def number(name: str, default: float, *, minimum: float = 0, integer: bool = True) -> float:
    raw = text(name, "")
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError as exc:
        kind = "a whole number" if integer else "a number"
        raise ImproperlyConfigured(f"{name} must be {kind}, not {raw!r}") from exc
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def integer(name: str, default: int, *, minimum: int = 0) -> int:
    return int(number(name, default, minimum=minimum))


def listing(name: str, default: list[str]) -> list[str]:
    raw = text(name, "")
    if not raw:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def url(name: str, schemes: tuple[str, ...]) -> str:
    value = text(name)
    shown = redact(value)
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}, not {shown!r}"
        )
    try:
        parts.port  # noqa: B018 — parsing the port is the check
    except ValueError:
        raise ImproperlyConfigured(f"{name} has a malformed port: {shown!r}") from None
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} has no host: {shown!r}")
    return value


def database(name: str = "DATABASE_URL") -> dict:
    return environ.Env.db_url_config(url(name, DATABASE_SCHEMES))


def email(name: str, default: str) -> dict:
    """Django's EMAIL_* settings from a URL (django-environ's schemes)."""
    value = text(name, default)
    scheme = value.partition("://")[0]
    if scheme not in environ.Env.EMAIL_SCHEMES:
        choices = ", ".join(sorted(s + "://" for s in environ.Env.EMAIL_SCHEMES))
        raise ImproperlyConfigured(f"{name} must start with one of {choices}, not {redact(value)!r}")
    return environ.Env.email_url_config(value)


def redact(value: str) -> str:
    """The URL with everything between the scheme and the host masked, fit for a message.

    Masks up to the last "@", so a password holding "/", "?", "#" or "@" stays hidden.
    """
    scheme, separator, rest = value.partition("://")
    if not separator or "@" not in rest:
        return value
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
