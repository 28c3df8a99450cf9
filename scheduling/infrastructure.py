"""Telling an outage from a fault: the database, the cache or the broker went away (retry
until it is back) versus the job's own error (its retry policy decides).

Seen in practice: during a PostgreSQL restart a worker's queries fail with "connection
refused", "terminating connection due to administrator command" or "the database system is
starting up"; during a Redis restart the broker and the cache raise connection errors. Each
of those passes by itself within seconds to minutes, so a run must wait it out rather than
fail or, worse, drop the message that carries it.
"""

from __future__ import annotations

import random

from django.db import DatabaseError, InterfaceError, OperationalError, connection

try:  # the Redis client is there whenever Redis is the cache or the broker
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # pragma: no cover - redis is a pinned requirement
    RedisConnectionError = RedisTimeoutError = ()  # type: ignore[assignment,misc]
from kombu.exceptions import OperationalError as BrokerError

# PostgreSQL's SQLSTATE classes for a connection that failed or a server going down or up:
# 08 connection exception, 57P01-57P03 shutdown and "cannot connect now", 53 out of resources.
OUTAGE_SQLSTATES = ("08", "57P", "53")
# Texts of the same from drivers that give no SQLSTATE (a connection never made, SQLite).
OUTAGE_TEXTS = (
    "connection refused",
    "could not connect",
    "server closed the connection",
    "connection is closed",
    "connection already closed",
    "terminating connection",
    "the database system is",
    "consuming input failed",
    "database is locked",
    "disk i/o error",
)
RETRY_BASE = 2.0  # seconds before the first retry of a task that met an outage
RETRY_CAP = 60.0  # longest wait between its retries: it resumes within a minute of the service
TASK_RETRIES = 40  # retries of a task through an outage: about half an hour


def is_infrastructure_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says a service went away rather than that the
    job did something wrong."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, RedisConnectionError | RedisTimeoutError | BrokerError | InterfaceError):
            return True
        if isinstance(exc, OperationalError) and _outage(exc):
            return True
        if isinstance(exc, DatabaseError) and exc.__cause__ is not None and _outage(exc.__cause__):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _outage(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "__cause__", None), "sqlstate", None)
    if state:
        return str(state).startswith(OUTAGE_SQLSTATES)
    text = str(exc).lower()
    return any(part in text for part in OUTAGE_TEXTS)


def database_usable() -> bool:
    """Whether the database answers now, reconnecting if the old connection broke."""
    try:
        connection.close_if_unusable_or_obsolete()
        if connection.connection is not None and not connection.is_usable():
            connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        connection.close()  # a broken connection must not be reused by the next task
        return False


def retry_delay(retries: int, rng: random.Random | None = None) -> float:
    """Seconds before a task's next try through an outage: doubling from RETRY_BASE to
    RETRY_CAP, with jitter so the workers' retries do not arrive as one wave."""
    delay = min(RETRY_CAP, RETRY_BASE * 2**retries)
    return delay / 2 + (rng or random).uniform(0, delay / 2)
