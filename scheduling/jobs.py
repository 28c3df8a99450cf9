"""The platform's own jobs, with seed 004's default schedules."""

from __future__ import annotations

import time

from django.conf import settings

from scheduling.calendar import CalendarRule, Cron, RuleKind
from scheduling.choices import CatchUp, KeyBy, Overlap
from scheduling.health import check_health
from scheduling.registry import JobError, Param, RetryPolicy, job
from scheduling.services import monitoring
from scheduling.services import watchdog as watching

NO_RETRY = RetryPolicy(max_retries=0)


@job(
    "SYS_HEALTH_CHECK",
    title="Platform health check",
    schedule=Cron(minute="0", hour="5"),
    retry=NO_RETRY,
    time_limit=120,
)
def health_check(ctx) -> None:
    """Records the health report (database, broker, cache, workers, beat) on the run; fails
    when a critical check fails, so repeated failures raise an alert."""
    report = check_health()
    ctx.result = report.as_dict(details=True)
    for check in report.checks:
        ctx.log(
            f"{check.name}: {'ok' if check.ok else 'failing'} {check.detail}".strip(), "info" if check.ok else "warning"
        )
    if report.status == "failing":
        failing = [check.name for check in report.checks if check.critical and not check.ok]
        raise JobError(f"critical health checks failing: {', '.join(failing)}")


@job(
    "SYS_LOG_CLEANUP",
    title="Delete old job logs, chunk records and task results",
    schedule=Cron(minute="0", hour="3"),
    rule=CalendarRule(kind=RuleKind.LAST_DAY_OF_MONTH),
    key_by=KeyBy.MONTH,
    params={"retention_days": Param(int, default=None, min=1, help="default: JOB_LOG_RETENTION_DAYS")},
    atomic=False,  # deletes in short batches, each its own transaction
)
def log_cleanup(ctx) -> None:
    days = ctx.params["retention_days"] or settings.JOB_LOG_RETENTION_DAYS
    deleted = monitoring.cleanup_logs(days, progress=lambda n: ctx.progress(n))
    ctx.count(processed=sum(deleted.values()))
    ctx.result = {"retention_days": days, "deleted": deleted}
    ctx.info(f"deleted rows older than {days} days", **deleted)


@job(
    "SYS_USER_SESSION_CLEANUP",
    title="Delete expired sessions",
    schedule=Cron(minute="0", hour="2"),
    atomic=False,
)
def session_cleanup(ctx) -> None:
    deleted = monitoring.cleanup_sessions(progress=lambda n: ctx.progress(n))
    ctx.count(processed=deleted)
    ctx.result = {"deleted": deleted}
    ctx.info(f"deleted {deleted} expired sessions")


@job(
    "SYS_PERFORMANCE_STATS",
    title="Job duration percentiles",
    schedule=Cron(minute="0", hour="5", day_of_week="sun"),
    key_by=KeyBy.WEEK,
    params={"window_days": Param(int, default=7, min=1, max=366)},
)
def performance_stats(ctx) -> None:
    """p50, p95, p99 and the longest duration of each job's succeeded runs over the window."""
    rows = monitoring.performance_stats(ctx.params["window_days"])
    ctx.count(processed=len(rows), created=len(rows))
    ctx.result = {row.job.code: {"runs": row.runs, "p50": row.p50, "p95": row.p95, "p99": row.p99} for row in rows}


@job(
    "SYS_WATCHDOG",
    title="Watchdog: stalled, lost, late and slow runs, missed slots",
    schedule=Cron(minute="*"),
    key_by=KeyBy.MINUTE,
    catch_up=CatchUp.SKIP,
    priority=9,  # ahead of any backlog on its queue: it is what notices a backlog that does not move
    params={"missed_every": Param(int, default=5, min=1, max=60, help="minutes between looks for missed slots")},
    retry=NO_RETRY,
    time_limit=50,
    atomic=False,
)
def watchdog(ctx) -> None:
    """Sends again what stalled (its messages lost while the broker was down), retries runs
    lost with their worker, raises late alerts for runs past their deadlines and slow ones
    for runs past their threshold while they still run, names waits that cannot end, and
    every few minutes looks for slots that produced no run within JOB_MISSED_GRACE."""
    missed = ctx.run.slot_at.minute % ctx.params["missed_every"] == 0
    found = watching.watchdog(log=ctx.log, missed=missed)
    ctx.result = found
    ctx.count(processed=sum(found.values()))


@job(
    "SYS_PROBE",
    title="Probe: a run that does nothing",
    params={"hold": Param(float, default=0.0, min=0.0, max=60.0, help="seconds to stay busy")},
    retry=NO_RETRY,
    time_limit=120,
    overlap=Overlap.ALLOW,
)
def probe(ctx) -> None:
    """A round trip through beat or the API, the queue, a worker and the run record; ``hold``
    keeps it running, to watch a run in flight or stop a worker under it."""
    if ctx.params["hold"]:
        deadline = time.monotonic() + ctx.params["hold"]
        while time.monotonic() < deadline:
            ctx.progress(int(ctx.params["hold"] - (deadline - time.monotonic())), int(ctx.params["hold"]))
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
    ctx.result = {"worker": ctx.run.worker, "attempt": ctx.attempt}
