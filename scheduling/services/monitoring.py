"""Watching the job layer: per-job health and status, duration statistics and the
retention clean-up. The watchdog, which acts on what it finds, is ``services.watchdog``."""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Callable

from django.contrib.sessions.models import Session
from django.db.models import Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_results.models import TaskResult

from scheduling.choices import ACTIVE, Cause, RunStatus, Severity
from scheduling.models import BeatLease, JobAlert, JobChunk, JobDefinition, JobLog, JobPerformance, JobRun
from scheduling.services import alerts, execution

DELETE_BATCH = 5000


# --- Health and status ---------------------------------------------------------------------


def job_health(now: datetime.datetime | None = None) -> list[dict]:
    """Per job: last run, last success, failures, consecutive failures, stalled runs, open
    alerts, and a verdict: critical (failing past its alert threshold, a run stalled or a
    critical alert open), warning (failing, or an alert open), good.

    Consecutive failures are counted per company for a per-company job, and the job shows
    its worst company's streak: one company failing while another succeeds is still failing."""
    now = now or timezone.now()
    week = now - datetime.timedelta(days=7)
    runs_of_job = JobRun.objects.filter(job=OuterRef("pk"))
    successes = runs_of_job.filter(status=RunStatus.SUCCEEDED).order_by("-finished_at")
    definitions = list(
        JobDefinition.objects.filter(registered=True)
        .annotate(
            success_at=Subquery(successes.values("finished_at")[:1]),
            last_run_id=Subquery(runs_of_job.order_by("-created_at", "-pk").values("pk")[:1]),
        )
        .order_by("code")
    )
    last_runs = JobRun.objects.in_bulk([d.last_run_id for d in definitions if d.last_run_id])
    failures = dict(
        JobRun.objects.filter(status=RunStatus.FAILED, finished_at__gte=week)
        .values("job_id")
        .annotate(n=Count("pk"))
        .values_list("job_id", "n")
    )
    streaks = consecutive_failures()
    open_alerts: dict[int, Counter] = defaultdict(Counter)
    for job_id, severity, cause in JobAlert.objects.open().values_list("job_id", "severity", "cause"):
        open_alerts[job_id][severity] += 1
        open_alerts[job_id][cause] += 1
    rows = []
    for definition in definitions:
        consecutive, success_at = streaks.get(definition.pk, 0), definition.success_at
        last = last_runs.get(definition.last_run_id)
        alerts_open = open_alerts[definition.pk]
        opened = sum(alerts_open[severity] for severity in Severity.values)
        stalled = alerts_open[Cause.STALLED]
        if consecutive >= definition.failure_alert_after or alerts_open[Severity.CRITICAL] or stalled:
            health = "critical"
        elif consecutive or opened:
            health = "warning"
        else:
            health = "good"
        rows.append(
            {
                "job": definition.code,
                "title": definition.title,
                "enabled": definition.enabled,
                "health": health,
                "last_run": _run_summary(last),
                "last_success_at": success_at,
                "seconds_since_success": (now - success_at).total_seconds() if success_at else None,
                "failures_7d": failures.get(definition.pk, 0),
                "consecutive_failures": consecutive,
                "stalled_runs": stalled,
                "open_alerts": opened,
            }
        )
    return rows


def consecutive_failures() -> dict[int, int]:
    """Per job id, the longest streak of failures since the last success among its
    companies (or of the job itself, for a global one). One query whatever the number of jobs."""
    own = Coalesce("company_id", Value(0))
    last_success = (
        JobRun.objects.filter(job=OuterRef("job"), status=RunStatus.SUCCEEDED)
        .annotate(own=own)
        .filter(own=OuterRef("own"))
        .order_by("-finished_at")
        .values("finished_at")[:1]
    )
    streaks = (
        JobRun.objects.filter(status=RunStatus.FAILED)
        .exclude(finished_at=None)
        .annotate(own=own, since=Subquery(last_success))
        .filter(Q(since__isnull=True) | Q(finished_at__gt=F("since")))
        .values("job_id", "own")
        .annotate(n=Count("pk"))
        .values_list("job_id", "n")
    )
    worst: dict[int, int] = {}
    for job_id, count in streaks:
        worst[job_id] = max(worst.get(job_id, 0), count)
    return worst


HEALTH_ORDER = ("good", "warning", "critical")


def overall_health(rows: list[dict]) -> str:
    """The worst verdict among the jobs: what a monitor pages on."""
    return max((row["health"] for row in rows), key=HEALTH_ORDER.index, default="good")


def _run_summary(run: JobRun | None) -> dict | None:
    if run is None:
        return None
    return {
        "id": run.pk,
        "run_key": run.run_key,
        "status": run.status,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "duration": run.duration,
    }


def jobs_status(now: datetime.datetime | None = None) -> dict:
    """What the layer is doing right now."""
    now = now or timezone.now()
    by_status = dict(JobRun.objects.active().values("status").annotate(n=Count("pk")).values_list("status", "n"))
    running = JobRun.objects.filter(status=RunStatus.RUNNING).select_related("job").order_by("started_at")[:50]
    lease = BeatLease.live(now)
    day = now - datetime.timedelta(days=1)
    finished = dict(
        JobRun.objects.filter(finished_at__gte=day).values("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    return {
        "at": now,
        "active": {status: by_status.get(status, 0) for status in sorted(ACTIVE)},
        "finished_24h": finished,
        "running": [
            {
                "id": run.pk,
                "job": run.job.code,
                "run_key": run.run_key,
                "worker": run.worker,
                "started_at": run.started_at,
                "progress": execution.live_progress(run),
            }
            for run in running
        ],
        "open_alerts": JobAlert.objects.open().count(),
        "stalled": [
            {"id": alert.run_id, "job": alert.job.code, "message": alert.message, "since": alert.created_at}
            for alert in JobAlert.objects.open().filter(cause=Cause.STALLED).select_related("job")[:50]
        ],
        "beat_leader": (
            {"holder": lease.holder, "since": lease.acquired_at, "lease_expires_at": lease.expires_at}
            if lease
            else None
        ),
    }


# --- Statistics -----------------------------------------------------------------------------


def performance_stats(window_days: int, now: datetime.datetime | None = None) -> list[JobPerformance]:
    """Duration percentiles of each job's succeeded runs over the window, stored."""
    now = now or timezone.now()
    start = now - datetime.timedelta(days=window_days)
    durations: dict[int, list[float]] = defaultdict(list)
    counts: dict[int, Counter] = defaultdict(Counter)
    finished = JobRun.objects.filter(finished_at__gte=start, finished_at__lt=now)
    for job_id, status, duration in finished.values_list("job_id", "status", "duration").iterator(chunk_size=5000):
        counts[job_id][status] += 1
        if status == RunStatus.SUCCEEDED and duration is not None:
            durations[job_id].append(duration)
    rows = []
    for job_id, tally in counts.items():
        values = durations[job_id]
        rows.append(
            JobPerformance(
                job_id=job_id,
                window_start=start,
                window_end=now,
                runs=sum(tally.values()),
                succeeded=tally[RunStatus.SUCCEEDED],
                failed=tally[RunStatus.FAILED],
                p50=alerts.percentile(values, 50) if values else None,
                p95=alerts.percentile(values, 95) if values else None,
                p99=alerts.percentile(values, 99) if values else None,
                longest=max(values) if values else None,
                computed_at=now,
            )
        )
    return JobPerformance.objects.bulk_create(rows)


# --- Retention -------------------------------------------------------------------------------


def delete_in_batches(queryset, progress: Callable[[int], None] | None = None) -> int:
    """Delete by primary-key batches: short transactions, no table-long lock."""
    total = 0
    model = queryset.model
    while True:
        batch = list(queryset.values_list("pk", flat=True)[:DELETE_BATCH])
        if not batch:
            return total
        model.objects.filter(pk__in=batch).delete()
        total += len(batch)
        if progress:
            progress(total)


def cleanup_logs(retention_days: int, now: datetime.datetime | None = None, progress=None) -> dict[str, int]:
    cutoff = (now or timezone.now()) - datetime.timedelta(days=retention_days)
    chunks = JobChunk.objects.filter(run__finished_at__lt=cutoff).exclude(run__status__in=ACTIVE)
    return {
        "logs": delete_in_batches(JobLog.objects.filter(at__lt=cutoff), progress),
        "chunks": delete_in_batches(chunks, progress),
        "task_results": delete_in_batches(TaskResult.objects.filter(date_done__lt=cutoff), progress),
    }


def cleanup_sessions(now: datetime.datetime | None = None, progress=None) -> int:
    return delete_in_batches(Session.objects.filter(expire_date__lt=now or timezone.now()), progress)
