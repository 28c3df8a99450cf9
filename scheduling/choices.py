"""The job layer's vocabularies, shared by the registry, the models and the API."""

from __future__ import annotations

from django.db import models


class RunStatus(models.TextChoices):
    PENDING = "pending"
    WAITING = "waiting", "waiting (dependencies)"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked", "blocked (an upstream run did not succeed)"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


# A run in one of these states will not change again unless an operator re-runs it.
FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.CANCELLED})
# States a worker may claim a run from.
CLAIMABLE = frozenset({RunStatus.QUEUED, RunStatus.RETRYING})
# States in which a run has not finished and may still be cancelled.
ACTIVE = frozenset(
    {
        RunStatus.PENDING,
        RunStatus.WAITING,
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        RunStatus.RETRYING,
        RunStatus.BLOCKED,
    }
)


class Trigger(models.TextChoices):
    SCHEDULE = "schedule"
    MANUAL = "manual", "manual (admin or command line)"
    API = "api"
    DEPENDENCY = "dependency"
    BACKFILL = "backfill"
    USER = "user", "user action in a client app"
    RETRY = "retry", "operator re-run"


class Overlap(models.TextChoices):
    SKIP = "skip", "skip the new run"
    QUEUE = "queue", "queue it until a slot frees"
    ALLOW = "allow", "allow, no limit"


class CatchUp(models.TextChoices):
    SKIP = "skip", "skip missed slots"
    LATEST = "latest", "run the latest missed slot once"
    ALL = "all", "run every missed slot within the window"


class KeyBy(models.TextChoices):
    """The granularity of a job's slot: one run per minute, hour, business date or period."""

    MINUTE = "minute", "minute"
    HOUR = "hour", "hour"
    DAY = "day", "business date"
    WEEK = "week", "ISO week"
    MONTH = "month", "month"
    QUARTER = "quarter", "quarter"
    YEAR = "year", "year"


class Scope(models.TextChoices):
    GLOBAL = "global", "once for the platform"
    COMPANY = "company", "once per company"


class Offset(models.TextChoices):
    SAME = "same", "same period"
    PREVIOUS = "previous", "previous period"


class Severity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Cause(models.TextChoices):
    CONSECUTIVE_FAILURES = "consecutive_failures", "consecutive failures"
    SLOW_RUN = "slow_run", "slow run"
    MISSED_RUN = "missed_run", "missed run"
    BLOCKED = "blocked", "blocked dependency"
    LOST_RUN = "lost_run", "run lost with its worker"
    LATE = "late", "late (past its deadline)"
    STALLED = "stalled", "stalled (no progress, its messages lost)"
    SCHEDULE = "schedule", "schedule that does not do what it says"


class AttemptStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost", "lost with its worker"


class Level(models.IntegerChoices):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


class RuleKind(models.TextChoices):
    LAST_DAY_OF_MONTH = "last_day_of_month", "last day of the month"
    QUARTER_END = "quarter_end", "quarter end"
    YEAR_END = "year_end", "year end"
    DAY_OF_MONTH = "day_of_month", "day n of the month"
    NTH_WORKING_DAY = "nth_working_day", "n-th working day of the month"
    LAST_WORKING_DAY = "last_working_day", "last working day of the month"


class Shift(models.TextChoices):
    NONE = "none", "no shift"
    NEXT = "next", "next working day"
    PREVIOUS = "previous", "previous working day"
    SKIP = "skip", "skip that period"
