"""Watching the job layer: the watchdog, per-job health and status, duration statistics,
and the retention clean-up."""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Callable

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_results.models import TaskResult

from scheduling import calendar, slots
from scheduling.choices import ACTIVE, Cause, Level, RunStatus, Severity
from scheduling.models import BeatLease, JobAlert, JobChunk, JobDefinition, JobLog, JobPerformance, JobRun, JobSchedule
from scheduling.services import alerts, execution, runs

DELETE_BATCH = 5000
WATCH_LOOKBACK = datetime.timedelta(days=1)
LOST_MARGIN = datetime.timedelta(minutes=5)
MISSED_BATCH = 500  # schedules whose runs are looked up in one query
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


# --- The watchdog --------------------------------------------------------------------------


def watchdog(now: datetime.datetime | None = None, log: Callable[..., None] | None = None) -> dict[str, int]:
    """Missed slots, runs lost with their worker, queued runs whose message went missing."""
    now = now or timezone.now()
    log = log or (lambda *args, **kwargs: None)
    found = {"missed": missed_slots(now, log), "lost": recover_lost_runs(now, log)}
    found["requeued"] = requeue_stale(now, log)
    return found


def missed_slots(now: datetime.datetime, log) -> int:
    """Slots older than the grace period, since the schedule's timing last changed, with no run."""
    grace = datetime.timedelta(seconds=settings.JOB_MISSED_GRACE)
    expected: dict[JobSchedule, dict[str, datetime.datetime]] = {}
    for schedule in JobSchedule.objects.with_timing().firing():
        since = max(now - WATCH_LOOKBACK, schedule.active_since or schedule.created_at)
        try:
            trigger = schedule.trigger()
            fires = calendar.fire_times_between(trigger, since, now - grace, schedule.calendar_rule(), limit=2000)
        except ValueError:
            continue
        zone = calendar.zone_name(trigger)
        if fires:
            expected[schedule] = {slots.slot_for(schedule.job.key_by, at, zone).key: at for at in fires}
    # The runs that exist, for every schedule at once: one query per batch, not one per schedule.
    present: set[tuple[int, str]] = set()
    batch = list(expected.items())
    for start in range(0, len(batch), MISSED_BATCH):
        part = batch[start : start + MISSED_BATCH]
        runs_there = JobRun.objects.filter(
            job_id__in={schedule.job_id for schedule, _ in part},
            run_key__in={key for _, keys in part for key in keys},
        )
        present.update(runs_there.values_list("job_id", "run_key"))
    missed_total = 0
    for schedule, keys in expected.items():
        missing = sorted(at for key, at in keys.items() if (schedule.job_id, key) not in present)
        if missing:
            missed_total += len(missing)
            log(f"{schedule.job.code}: {len(missing)} slot(s) without a run", level=Level.WARNING)
            alerts.raise_alert(
                schedule.job,
                Cause.MISSED_RUN,
                f"{schedule.job.code}: no run for {len(missing)} slot(s) from {missing[0]:%Y-%m-%d %H:%M} to "
                f"{missing[-1]:%Y-%m-%d %H:%M} UTC (is beat running?)",
                severity=Severity.CRITICAL,
            )
    return missed_total


def recover_lost_runs(now: datetime.datetime, log) -> int:
    """Running past its hard time limit means the worker died with it (the broker may
    never redeliver: embedded mode, a purged queue). Fail the attempt; retry by policy."""
    lost = 0
    running = JobRun.objects.filter(status=RunStatus.RUNNING).select_related("job")
    for run in running:
        limit = datetime.timedelta(seconds=run.job.time_limit) + LOST_MARGIN
        if run.body_finished_at is not None:
            # The function returned; its chunks are what is late. Send the pending ones again.
            if now - run.body_finished_at > limit:
                count = execution.send_chunks(run)
                log(f"run {run.pk}: re-sent {count} pending chunk(s)", level=Level.WARNING)
            continue
        if run.started_at is None or now - run.started_at <= limit:
            continue
        moved = JobRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, started_at=run.started_at)
        if run.attempts <= run.job.max_retries:
            if moved.update(status=RunStatus.RETRYING, error="lost with its worker", queued_at=now):
                runs.log(run, f"attempt {run.attempts} lost with worker {run.worker}; retrying", Level.WARNING)
                runs.send(run)
        elif moved.update(status=RunStatus.FAILED, error="lost with its worker", finished_at=now):
            runs.log(run, "lost with its worker; no retries left", Level.ERROR)
            runs.after_finish(run.pk)
        lost += 1
        alerts.raise_alert(run.job, Cause.LOST_RUN, f"{run.job.code} {run.run_key}: lost with worker {run.worker}")
        log(f"run {run.pk} lost with worker {run.worker}", level=Level.WARNING)
    return lost


def requeue_stale(now: datetime.datetime, log) -> int:
    """A queued run whose message outlived the broker's visibility timeout was lost; send again.
    A duplicate is harmless: the run is claimed once."""
    stale = now - datetime.timedelta(seconds=settings.CELERY_VISIBILITY_TIMEOUT + 600)
    count = 0
    for run in JobRun.objects.filter(status=RunStatus.QUEUED, queued_at__lt=stale).select_related("job")[:500]:
        if JobRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(queued_at=now):
            runs.send(run)
            count += 1
    if count:
        log(f"re-sent {count} queued run(s) whose message was lost", level=Level.WARNING)
    return count


# --- Health and status ---------------------------------------------------------------------


def job_health(now: datetime.datetime | None = None) -> list[dict]:
    """Per job: last run, last success, failures, consecutive failures, open alerts, and a
    verdict: critical (failing past its alert threshold or a critical alert open), warning
    (failing, or an alert open), good."""
    now = now or timezone.now()
    week = now - datetime.timedelta(days=7)
    runs_of_job = JobRun.objects.filter(job=OuterRef("pk"))
    successes = runs_of_job.filter(status=RunStatus.SUCCEEDED).order_by("-finished_at")
    # Consecutive failures: failed runs since the job's last success (all of them if none).
    failures_since = (
        runs_of_job.filter(status=RunStatus.FAILED, finished_at__gt=Coalesce(OuterRef("success_at"), Value(EPOCH)))
        .values("job")
        .annotate(n=Count("pk"))
        .values("n")
    )
    definitions = list(
        JobDefinition.objects.filter(registered=True)
        .annotate(
            success_at=Subquery(successes.values("finished_at")[:1]),
            last_run_id=Subquery(runs_of_job.order_by("-created_at", "-pk").values("pk")[:1]),
        )
        .annotate(consecutive=Coalesce(Subquery(failures_since), 0))
        .order_by("code")
    )
    last_runs = JobRun.objects.in_bulk([d.last_run_id for d in definitions if d.last_run_id])
    failures = dict(
        JobRun.objects.filter(status=RunStatus.FAILED, finished_at__gte=week)
        .values("job_id")
        .annotate(n=Count("pk"))
        .values_list("job_id", "n")
    )
    open_alerts: dict[int, Counter] = defaultdict(Counter)
    for job_id, severity in JobAlert.objects.open().values_list("job_id", "severity"):
        open_alerts[job_id][severity] += 1
    rows = []
    for definition in definitions:
        consecutive, success_at = definition.consecutive, definition.success_at
        last = last_runs.get(definition.last_run_id)
        alerts_open = open_alerts[definition.pk]
        if consecutive >= definition.failure_alert_after or alerts_open[Severity.CRITICAL]:
            health = "critical"
        elif consecutive or sum(alerts_open.values()):
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
                "open_alerts": sum(alerts_open.values()),
            }
        )
    return rows


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
